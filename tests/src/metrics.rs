//! `/metrics` scraped and parsed by the reference Prometheus parser (Debian's
//! `python3-prometheus-client`), so the tests check what a Prometheus server
//! would read, not our own idea of the format.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::util::run_timeout;

/// Fetches the URL, parses it with `prometheus_client.parser` and prints one
/// JSON list of `[sample name, labels, value]`. The parser rejects malformed
/// exposition text, which fails the scrape.
const PARSE: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    assert r.status == 200, r.status
    ctype = r.headers.get("Content-Type")
    text = r.read().decode()
out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(text) for s in f.samples]
print(json.dumps({"content_type": ctype, "samples": out}))
"#;

/// One parsed scrape.
#[derive(Debug)]
pub struct Scrape {
    /// The response's Content-Type.
    pub content_type: String,
    /// Samples: name, labels, value.
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// The value of sample `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, _, v)| *v)
    }

    /// Like [`Scrape::get`], panicking with the whole scrape when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in {self:#?}"))
    }
}

/// Scrapes `http://addr/metrics`, from inside namespace `ns` if given.
pub fn scrape(ns: Option<&str>, addr: SocketAddr) -> anyhow::Result<Scrape> {
    let url = format!("http://{addr}/metrics");
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "/usr/bin/python3"]);
            c
        }
        None => Command::new("/usr/bin/python3"),
    };
    cmd.args(["-c", PARSE, &url]);
    let ran = run_timeout(&mut cmd, Duration::from_secs(10))?;
    anyhow::ensure!(
        ran.code == Some(0),
        "scraping {url} (needs python3-prometheus-client):\n{}",
        ran.transcript()
    );
    let v: serde_json::Value = serde_json::from_str(&ran.stdout).context("parser output")?;
    let mut samples = Vec::new();
    for s in v["samples"].as_array().context("samples")? {
        let name = s[0].as_str().context("name")?.to_owned();
        let labels = s[1]
            .as_object()
            .context("labels")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        samples.push((name, labels, s[2].as_f64().context("value")?));
    }
    Ok(Scrape {
        content_type: v["content_type"].as_str().unwrap_or_default().to_owned(),
        samples,
    })
}
