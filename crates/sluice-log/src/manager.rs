//! One log directory: all its partition logs, its checkpoint files and its clean-shutdown
//! marker (Kafka's `LogManager` for a single `log.dirs` entry).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::io::{LogIo, OsIo};
use crate::log::{now_ms, Log, LogOpenOptions};

/// Marker written on clean shutdown and removed on open (Kafka's name).
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Recovery points of all partitions in the dir.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// High watermarks of all partitions in the dir.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Log start offsets of all partitions in the dir.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Suffix of partition directories being deleted.
const DELETE_DIR_SUFFIX: &str = "-delete";

/// A topic name and partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from(topic),
            partition,
        }
    }

    /// Parses a partition directory name, `<topic>-<partition>`.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        let partition: i32 = partition.parse().ok()?;
        (!topic.is_empty() && partition >= 0).then(|| TopicPartition::new(topic, partition))
    }

    /// The partition directory name.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The directory of the cluster metadata log (Kafka's name), skipped when partitions are
/// opened.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// All partition logs of one log directory.
pub struct LogManager {
    dir: PathBuf,
    default_config: LogConfig,
    io: Arc<dyn LogIo>,
    logs: RwLock<HashMap<TopicPartition, Arc<Log>>>,
    /// Serialises checkpoint writes.
    checkpoint_lock: Mutex<()>,
}

impl fmt::Debug for LogManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogManager")
            .field("dir", &self.dir)
            .field("logs", &self.logs.read().map(|l| l.len()))
            .finish()
    }
}

type Checkpoint = HashMap<TopicPartition, i64>;
type Opened = Result<Vec<(TopicPartition, Arc<Log>)>>;

impl LogManager {
    /// Opens every partition in `dir` (in parallel), recovering them if the last shutdown was
    /// not clean, then removes the clean-shutdown marker. `config_for` gives each partition's
    /// configuration (topic overrides); partitions it does not know get `default_config`.
    pub fn open(
        dir: &Path,
        default_config: LogConfig,
        config_for: &(dyn Fn(&TopicPartition) -> Option<LogConfig> + Sync),
    ) -> Result<LogManager> {
        LogManager::open_with_io(dir, default_config, config_for, Arc::new(OsIo))
    }

    /// [`LogManager::open`] with a custom I/O seam.
    pub fn open_with_io(
        dir: &Path,
        default_config: LogConfig,
        config_for: &(dyn Fn(&TopicPartition) -> Option<LogConfig> + Sync),
        io: Arc<dyn LogIo>,
    ) -> Result<LogManager> {
        fs::create_dir_all(dir).map_err(LogError::io(dir))?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_shutdown = marker.exists();
        let recovery_points = read_checkpoint(&dir.join(RECOVERY_POINT_CHECKPOINT))?;
        let start_offsets = read_checkpoint(&dir.join(LOG_START_OFFSET_CHECKPOINT))?;
        let high_watermarks = read_checkpoint(&dir.join(REPLICATION_OFFSET_CHECKPOINT))?;
        let mut partitions = Vec::new();
        for entry in fs::read_dir(dir).map_err(LogError::io(dir))? {
            let entry = entry.map_err(LogError::io(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(DELETE_DIR_SUFFIX) {
                let _ = fs::remove_dir_all(entry.path());
                continue;
            }
            if !entry
                .file_type()
                .map_err(LogError::io(entry.path()))?
                .is_dir()
            {
                continue;
            }
            // The controller's metadata log sits beside the partitions, as in Kafka, but is no
            // partition: it has its own format and owner.
            if name == METADATA_LOG_DIR {
                continue;
            }
            if let Some(tp) = TopicPartition::from_dir_name(name) {
                partitions.push(tp);
            }
        }
        let now = now_ms();
        let open_one = |tp: &TopicPartition| -> Result<(TopicPartition, Arc<Log>)> {
            let options = LogOpenOptions {
                recovery_point: recovery_points.get(tp).copied().unwrap_or(0),
                log_start_offset: start_offsets.get(tp).copied().unwrap_or(0),
                high_watermark: high_watermarks.get(tp).copied().unwrap_or(0),
                clean_shutdown,
                io: io.clone(),
                now_ms: now,
            };
            let config = config_for(tp).unwrap_or(default_config);
            let log = Log::open(&dir.join(tp.dir_name()), config, options)?;
            Ok((tp.clone(), Arc::new(log)))
        };
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let chunk = partitions.len().div_ceil(threads).max(1);
        let results: Vec<Opened> = std::thread::scope(|scope| {
            let handles: Vec<_> = partitions
                .chunks(chunk)
                .map(|part| scope.spawn(|| part.iter().map(open_one).collect::<Result<Vec<_>>>()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("log open thread panicked"))
                .collect()
        });
        let mut logs = HashMap::with_capacity(partitions.len());
        for result in results {
            logs.extend(result?);
        }
        if clean_shutdown {
            fs::remove_file(&marker).map_err(LogError::io(&marker))?;
            checkpoint::sync_dir(dir).map_err(LogError::io(dir))?;
        }
        tracing::info!(dir = %dir.display(), partitions = logs.len(), clean_shutdown, "opened log dir");
        Ok(LogManager {
            dir: dir.to_path_buf(),
            default_config,
            io,
            logs: RwLock::new(logs),
            checkpoint_lock: Mutex::new(()),
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log of a partition, if it exists here.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.read().expect("logs lock").get(tp).cloned()
    }

    /// All partitions held.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.logs
            .read()
            .expect("logs lock")
            .keys()
            .cloned()
            .collect()
    }

    /// The log of a partition, created empty (with `config` or the default) if missing.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: Option<LogConfig>,
    ) -> Result<Arc<Log>> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let mut logs = self.logs.write().expect("logs lock");
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        let options = LogOpenOptions {
            clean_shutdown: true,
            io: self.io.clone(),
            ..LogOpenOptions::default()
        };
        // The new directory entry becomes durable with the log's first flush.
        let log = Arc::new(Log::open(
            &self.dir.join(tp.dir_name()),
            config.unwrap_or(self.default_config),
            options,
        )?);
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Removes a partition and deletes its directory (DeleteTopics, reassignment away).
    pub fn delete_log(&self, tp: &TopicPartition) -> Result<bool> {
        let Some(log) = self.logs.write().expect("logs lock").remove(tp) else {
            return Ok(false);
        };
        log.delete()?;
        Ok(true)
    }

    /// Writes the recovery-point, log-start-offset and high-watermark checkpoints atomically.
    pub fn checkpoint(&self) -> Result<()> {
        let _writing = self.checkpoint_lock.lock().expect("checkpoint lock");
        let logs: Vec<(TopicPartition, Arc<Log>)> = self
            .logs
            .read()
            .expect("logs lock")
            .iter()
            .map(|(tp, log)| (tp.clone(), log.clone()))
            .collect();
        let write = |name: &str, value: &dyn Fn(&Log) -> i64| {
            let lines = logs
                .iter()
                .map(|(tp, log)| format!("{} {} {}", tp.topic, tp.partition, value(log)));
            checkpoint::write_atomic(&self.dir.join(name), &checkpoint::encode_lines(0, lines))
        };
        write(RECOVERY_POINT_CHECKPOINT, &|log| log.recovery_point())?;
        write(LOG_START_OFFSET_CHECKPOINT, &|log| log.log_start_offset())?;
        write(REPLICATION_OFFSET_CHECKPOINT, &|log| log.high_watermark())
    }

    /// A snapshot of every open log, so work on them runs without holding the map's lock.
    fn all_logs(&self) -> Vec<Arc<Log>> {
        self.logs
            .read()
            .expect("logs lock")
            .values()
            .cloned()
            .collect()
    }

    /// Flushes every log that has unflushed data (for a periodic flusher).
    pub fn flush_all(&self) -> Result<()> {
        let logs = self.all_logs();
        for log in logs {
            log.flush()?;
        }
        Ok(())
    }

    /// Removes expired `.deleted` files of every log; returns how many.
    pub fn delete_expired_files(&self, now_ms: i64) -> usize {
        let logs = self.all_logs();
        logs.iter()
            .map(|log| log.delete_expired_files(now_ms))
            .sum()
    }

    /// Forgets idle idempotent producers in every log (`producer.id.expiration.ms`); returns
    /// how many were removed.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let logs = self.all_logs();
        logs.iter()
            .filter_map(|log| log.remove_expired_producers(now_ms, expiration_ms).ok())
            .sum()
    }

    /// Closes every log, syncs the file system once, writes the checkpoints and then the
    /// clean-shutdown marker, so the next open skips recovery.
    pub fn close(&self) -> Result<()> {
        let logs = self.all_logs();
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let chunk = logs.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = logs
                .chunks(chunk)
                .map(|part| scope.spawn(|| part.iter().try_for_each(|log| log.close_with(false))))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("log close thread panicked"))
        })?;
        checkpoint::sync_filesystem(&self.dir).map_err(LogError::io(&self.dir))?;
        for log in &logs {
            log.mark_flushed();
        }
        self.checkpoint()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        checkpoint::write_atomic(&marker, b"")
    }
}

fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let Some(lines) = checkpoint::read_lines(path, 0)? else {
        tracing::warn!(path = %path.display(), "ignoring malformed checkpoint file");
        return Ok(Checkpoint::new());
    };
    let mut map = Checkpoint::with_capacity(lines.len());
    for line in lines {
        let mut fields = line.rsplitn(3, ' ');
        let offset = fields.next().and_then(|f| f.parse().ok());
        let partition = fields.next().and_then(|f| f.parse().ok());
        if let (Some(offset), Some(partition), Some(topic)) = (offset, partition, fields.next()) {
            map.insert(TopicPartition::new(topic, partition), offset);
        }
    }
    Ok(map)
}
