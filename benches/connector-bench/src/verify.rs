//! Figures of `connector-gen verify` against the generated cursorpay connector serving 2,500
//! transactions (in bursts of 150 sharing one second), 60 accounts and 45 recipients: wall
//! time and requests, at Formance's page size alone, then at 100 and 7 with payouts and
//! transfers. The run is the library's, the same code as the command line's.

use std::path::Path;
use std::time::Duration;

use connector_gen::verify::wire::Wire;
use connector_gen::verify::{self, InitiateOptions, Options};

use crate::children::Server;
use crate::support::mock_cursor::Cursorpay;

const TRANSACTIONS: usize = 2_500;

pub fn run(bins: &Path, token: &str, api_key: &str, env: &[(&'static str, String)]) {
    let cursorpay = Cursorpay::start(20_260_302, token);
    cursorpay.seed_accounts(60);
    cursorpay.seed_recipients(45);
    cursorpay.seed_transactions(TRANSACTIONS, 150);
    cursorpay.advance(120);
    let env: Vec<(&str, String)> = env
        .iter()
        .map(|(k, v)| match *k {
            "CURSORPAY_BASE_URL" => (*k, cursorpay.url()),
            _ => (*k, v.clone()),
        })
        .collect();
    let connector = Server::start("cursorpay", &bins.join("cursorpay"), &env);
    let url = format!("http://{}", connector.addr);
    for (page_sizes, initiate) in [(vec![100], false), (vec![100, 7], true)] {
        let options = Options {
            url: url.clone(),
            api_key: api_key.to_owned(),
            page_sizes: page_sizes.clone(),
            cycles: 2,
            max_requests: 20_000,
            max_time: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            initiate: initiate.then(|| InitiateOptions {
                source: None,
                destination: None,
                amount: 100,
                currency: None,
                link_wait: Duration::from_secs(10),
            }),
            progress: false,
        };
        let report = verify::run(Wire::bundled(), &options)
            .unwrap_or_else(|e| panic!("verify could not run: {}", e.0));
        let served: usize = report
            .lists
            .iter()
            .filter(|l| l.page_size == page_sizes[0])
            .map(|l| l.served)
            .sum();
        println!(
            "verify, page sizes {page_sizes:?}{}: {} records and {} balances in {:.2} s, {} requests, {} findings",
            if initiate { " with --initiate" } else { "" },
            served,
            report.balances_checked,
            report.wall_ms as f64 / 1000.0,
            report.requests,
            report.findings.len()
        );
        for list in &report.lists {
            println!(
                "  {:<14} page size {:>3}: {:>5} served, {:>4} cycles, {:>5} requests",
                list.list, list.page_size, list.served, list.cycles, list.requests
            );
        }
        assert!(
            report.findings.is_empty(),
            "the example connector has findings: {}",
            report.human()
        );
    }
}
