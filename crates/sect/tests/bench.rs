#![cfg(target_os = "linux")]
//! `sect bench` at a tiny size: every variant must compute the same
//! checksum (the bench fails otherwise), and the report must be complete.
//! No timing is asserted.

use assert_cmd::Command;
use serde_json::Value;

const SECT: &str = env!("CARGO_BIN_EXE_sect");

#[test]
fn tiny_bench_runs_and_reports_every_claim() {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("bench.json");
    let plots = out.path().join("plots");
    let assert = Command::new(SECT)
        .args(["bench", "--quick", "--size", "2M", "--runs", "1", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&plots)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(stdout.contains("claims"), "{stdout}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "cpu",
        "cores",
        "kernel",
        "page_size",
        "thp_enabled",
        "thp_shmem_enabled",
        "data_file_system",
    ] {
        assert!(!report["env"][key].is_null(), "env lacks {key}");
    }
    let results = report["results"].as_array().unwrap();
    for suite in ["mmap", "shared", "ipc", "image", "async"] {
        assert!(
            results.iter().any(|r| r["suite"] == suite),
            "no {suite} results"
        );
    }
    for r in results {
        for key in ["suite", "case", "metric", "unit"] {
            assert!(r[key].is_string(), "{r}");
        }
        let (min, median, max) = (
            r["min"].as_f64().unwrap(),
            r["median"].as_f64().unwrap(),
            r["max"].as_f64().unwrap(),
        );
        assert!(min > 0.0 && min <= median && median <= max, "{r}");
    }
    let claims = report["claims"].as_array().unwrap();
    let ids: Vec<&str> = claims.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "channel_rtt_vs_floor",
            "pipe_rtt_vs_channel",
            "uds_rtt_vs_channel",
            "channel_stream64k_vs_uds",
            "zerocopy_4m_vs_8b",
            "channel_loaded_rtt_vs_pipe",
            "channel_loaded_stream_vs_uds",
            "mmap_seq_vs_read",
            "mmap_rand8_vs_pread",
            "mmap_scan_vs_memory",
            "shared_vs_private_seq",
            "shared_vs_private_rand",
            "image_map_vs_read_ready",
            "image_resident_after_one_call",
            "async_view_stall_p99_vs_plain",
            "async_view_vs_tokio_fs",
            "async_channel_rtt_vs_uds",
            "async_channel_stream64k_vs_uds"
        ]
    );
    let cores = report["env"]["cores"].as_f64().unwrap();
    let busy_fraction = report["busy_fraction"].as_f64().unwrap();
    for c in claims {
        let ratio = c["ratio"].as_f64().unwrap();
        // A fraction of a file can round to 0.00; a ratio of speeds cannot.
        if c["id"] == "image_resident_after_one_call" {
            assert!((0.0..=1.0).contains(&ratio), "{c}");
        } else {
            assert!(ratio > 0.0, "{c}");
        }
        // Printed and compared at two decimals.
        assert_eq!((ratio * 100.0).round() / 100.0, ratio, "{c}");
        assert!(c["holds"].is_boolean() && c["goal"].is_string(), "{c}");
        let load = &c["load"];
        let others =
            load["others_cores"].as_f64().unwrap() + load["stolen_cores"].as_f64().unwrap();
        // Compared at the two decimals printed.
        let others = (others * 100.0).round() / 100.0;
        let want = if others > busy_fraction * cores {
            "busy"
        } else if c["holds"].as_bool().unwrap() {
            "holds"
        } else {
            "missed"
        };
        assert_eq!(c["verdict"], want, "{c}");
    }
    // Round trips: one row each, percentiles as numbers in order.
    let trips: Vec<&Value> = results.iter().filter(|r| !r["tail"].is_null()).collect();
    assert!(trips.len() >= 8, "round-trip rows: {}", trips.len());
    for r in trips {
        let t = &r["tail"];
        let q = |k: &str| t[k].as_u64().unwrap();
        assert!(
            q("p50") <= q("p99") && q("p99") <= q("p999") && q("p999") <= q("max"),
            "{r}"
        );
    }
    for group in ["round trip", "under load", "streaming under load"] {
        assert!(
            results.iter().any(|r| r["group"] == group),
            "no {group} group"
        );
    }
    assert!(stdout.contains("load at start:"), "{stdout}");
    // Two processes mapping the image share its code page.
    let shared = stdout
        .split("share its pages (/proc/self/smaps while both ran): code ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no sharing note: {stdout}"));
    assert!(shared >= 4, "shared code {shared} KiB");
    for svg in ["mmap-scan.svg", "mmap-random.svg", "shared-seq.svg"] {
        let text = std::fs::read_to_string(plots.join(svg)).unwrap();
        assert!(
            text.contains("<svg") && (text.contains("GB/s") || text.contains("ns per read")),
            "{svg}"
        );
    }
}

#[test]
fn one_suite_at_a_time() {
    let assert = Command::new(SECT)
        .args(["bench", "shared", "--quick", "--size", "1M", "--runs", "1"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(stdout.contains("shared / sequential read"), "{stdout}");
    assert!(!stdout.contains("mmap / scan"), "{stdout}");
    assert!(
        stdout.contains("(suite not run)"),
        "mmap claims are marked as not measured"
    );
}

#[test]
fn bad_bench_arguments_are_usage_errors() {
    Command::new(SECT)
        .args(["bench", "nosuchsuite"])
        .assert()
        .code(2);
    Command::new(SECT)
        .args(["bench", "--runs", "0"])
        .assert()
        .code(2);
    Command::new(SECT)
        .args(["bench", "--size", "10Q"])
        .assert()
        .code(2);
    let out = Command::new(SECT)
        .args(["bench", "--size", "4K"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.starts_with("sect: error:") && err.contains("too small"),
        "{err}"
    );
}
