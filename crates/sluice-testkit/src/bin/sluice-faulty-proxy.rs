//! `sluice-faulty-proxy LISTEN_PORT UPSTREAM DROP_EVERY`: the test proxy as a process (drops about
//! 1 in DROP_EVERY Produce responses, at random), for test
//! scripts driving clients in other languages. Runs until killed.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: sluice-faulty-proxy LISTEN_PORT UPSTREAM_HOST:PORT DROP_EVERY");
        std::process::exit(2);
    }
    let (Ok(port), Ok(drop_every)) = (args[1].parse::<u16>(), args[3].parse::<u64>()) else {
        eprintln!("LISTEN_PORT and DROP_EVERY must be numbers");
        std::process::exit(2);
    };
    let listener = match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let _proxy = sluice_testkit::proxy::FaultyProxy::serve(listener, args[2].clone(), drop_every);
    loop {
        std::thread::park();
    }
}
