// Package kgolog gives the franz-go commands kgo's own log on stderr when FRANZ_LOG is set.
package kgolog

import (
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Opt turns on kgo's log at the level named by FRANZ_LOG (debug, info, warn or error); off
// otherwise.
func Opt() kgo.Opt {
	levels := map[string]kgo.LogLevel{"debug": kgo.LogLevelDebug, "info": kgo.LogLevelInfo,
		"warn": kgo.LogLevelWarn, "error": kgo.LogLevelError}
	level, ok := levels[os.Getenv("FRANZ_LOG")]
	if !ok {
		level = kgo.LogLevelNone
	}
	return kgo.WithLogger(kgo.BasicLogger(os.Stderr, level, nil))
}
