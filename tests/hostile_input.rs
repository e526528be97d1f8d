//! Hostile but realistic input, table-driven: every case runs the real binary on a bad flag,
//! file or number and checks that the process ends in time, did not panic or abort, and — for
//! input that cannot be used — exits non-zero with a message naming what and where.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a case expects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Refused: non-zero exit, stderr names each of these.
    Error(&'static [&'static str]),
    /// Accepted (perhaps with a warning naming each of these on stderr), exit 0.
    Ok(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    /// Arguments; `{dir}` is the case's scratch folder, `{repo}` the repository.
    args: &'static [&'static str],
    /// Files to write into `{dir}` first: (name, contents).
    files: fn(&Path),
    expect: Expect,
}

const LIMIT: Duration = Duration::from_secs(60);

fn no_files(_: &Path) {}

fn repo(rel: &str) -> PathBuf {
    common::repo_path(rel)
}

/// An E4 export folder: the excerpt's files with `edit` applied to one of them.
fn e4_with(dir: &Path, file: &str, edit: impl Fn(&str) -> String) {
    let target = dir.join("e4");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(repo("tests/data/e4-S05-excerpt/BVP.csv.gz"), target.join("BVP.csv.gz")).unwrap();
    for f in ["ACC.csv", "EDA.csv", "TEMP.csv"] {
        let text = std::fs::read_to_string(repo("tests/data/e4-S05-excerpt").join(f)).unwrap();
        let text = if f == file { edit(&text) } else { text };
        std::fs::write(target.join(f), text).unwrap();
    }
}

/// Replace the first line (start times) of an E4 file by `start` for every column.
fn shift_start(text: &str, by_s: f64) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    let shifted: Vec<String> =
        first.split(',').map(|v| format!("{:.6}", v.trim().parse::<f64>().unwrap() + by_s)).collect();
    std::iter::once(shifted.join(", ")).chain(lines.map(str::to_string)).collect::<Vec<_>>().join("\n") + "\n"
}

/// Replace line `index` (0-based) of a file by `value`.
fn set_line(text: &str, index: usize, value: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines[index] = value;
    lines.join("\n") + "\n"
}

fn wfdb_with(dir: &Path, header: impl Fn(&str) -> String, dat: impl Fn(Vec<u8>) -> Vec<u8>) {
    let src = repo("tests/data/mitdb-100-5min");
    let hea = std::fs::read_to_string(src.join("100.hea")).unwrap();
    std::fs::write(dir.join("100.hea"), header(&hea)).unwrap();
    std::fs::write(dir.join("100.dat"), dat(std::fs::read(src.join("100.dat")).unwrap())).unwrap();
}

/// `config/serial-sim.toml` naming a device that does not exist, with `from` replaced by `to`.
fn serial_config(dir: &Path, from: &str, to: &str) {
    let config = std::fs::read_to_string(repo("config/serial-sim.toml")).unwrap();
    assert!(config.contains(from), "{from}");
    let config = config.replace("/tmp/biofeedd-serial", "/tmp/biofeedd-serial-absent").replace(from, to);
    std::fs::write(dir.join("c.toml"), config).unwrap();
}

const CASES: &[Case] = &[
    Case {
        name: "replay --subject that would break the topic tree",
        args: &["replay", "--format", "e4", "--input", "{repo}/tests/data/e4-S05-excerpt", "--subject", "a/+/#"],
        files: no_files,
        expect: Expect::Error(&["--subject `a/+/#`", "MQTT topic level"]),
    },
    Case {
        name: "CSV time column a nanosecond apart",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| {
            let rows: String = (0..50).map(|i| format!("{},{}\n", i as f64 * 1e-9, i)).collect();
            std::fs::write(d.join("t.csv"), format!("t,ECG\n{rows}")).unwrap();
            std::fs::write(
                d.join("c.toml"),
                "[hub]\nid = \"h\"\n[[sensor]]\nid = \"s\"\nsubject = \"p\"\n[sensor.source]\nkind = \"replay\"\nformat = \"csv\"\npath = \"t.csv\"\ntime_column = \"t\"\nchannels = [{ column = \"ECG\", modality = \"ecg\", unit = \"mV\" }]\n",
            )
            .unwrap();
        },
        expect: Expect::Error(&["t.csv", "sampling rate that must be between 0.01 and 100000 Hz"]),
    },
    // Numbers from flags meet the same rules as the config's.
    Case {
        name: "replay --rate inf",
        args: &["replay", "--format", "csv", "--input", "{repo}/data/demo/bio_eventrelated_100hz.csv", "--rate=inf"],
        files: no_files,
        expect: Expect::Error(&["--rate", "between 0.01 and 100000 Hz"]),
    },
    Case {
        name: "replay --rate 1e-9",
        args: &["replay", "--format", "csv", "--input", "{repo}/data/demo/bio_eventrelated_100hz.csv", "--rate=1e-9"],
        files: no_files,
        expect: Expect::Error(&["--rate", "between 0.01 and 100000 Hz"]),
    },
    Case {
        name: "replay --rate 0",
        args: &["replay", "--format", "csv", "--input", "{repo}/data/demo/bio_eventrelated_100hz.csv", "--rate=0"],
        files: no_files,
        expect: Expect::Error(&["--rate", "not 0 Hz"]),
    },
    Case {
        name: "replay --rate nan",
        args: &["replay", "--format", "csv", "--input", "{repo}/data/demo/bio_eventrelated_100hz.csv", "--rate=nan"],
        files: no_files,
        expect: Expect::Error(&["--rate", "NaN"]),
    },
    Case {
        name: "replay --rate -5",
        args: &["replay", "--format", "csv", "--input", "{repo}/data/demo/bio_eventrelated_100hz.csv", "--rate=-5"],
        files: no_files,
        expect: Expect::Error(&["--rate", "not -5 Hz"]),
    },
    Case {
        name: "run --duration 1e300",
        args: &["run", "--config", "{repo}/config/demo.toml", "--duration=1e300"],
        files: no_files,
        expect: Expect::Error(&["--duration", "at most 31536000 s"]),
    },
    Case {
        name: "run --duration -1",
        args: &["run", "--config", "{repo}/config/demo.toml", "--duration=-1"],
        files: no_files,
        expect: Expect::Error(&["--duration"]),
    },
    Case {
        name: "run --speed inf",
        args: &["run", "--config", "{repo}/config/demo.toml", "--speed=inf"],
        files: no_files,
        expect: Expect::Error(&["--speed", "speed must be"]),
    },
    Case {
        name: "hrv --rate 0",
        args: &["hrv", "--peaks", "{dir}/peaks", "--rate=0"],
        files: |d| std::fs::write(d.join("peaks"), "1\n300\n").unwrap(),
        expect: Expect::Error(&["--rate"]),
    },
    // Recordings whose channels disagree in time never spin or flood.
    Case {
        name: "E4 channel a year away",
        args: &["replay", "--format", "e4", "--input", "{dir}/e4", "--output", "jsonl"],
        files: |d| e4_with(d, "EDA.csv", |t| shift_start(t, 365.0 * 86_400.0)),
        expect: Expect::Ok(&["channel `eda` starts 31536000 s after"]),
    },
    Case {
        name: "E4 channel ten days away",
        args: &["replay", "--format", "e4", "--input", "{dir}/e4", "--output", "jsonl"],
        files: |d| e4_with(d, "TEMP.csv", |t| shift_start(t, 10.0 * 86_400.0)),
        expect: Expect::Ok(&["windows without any sample skipped"]),
    },
    Case {
        name: "E4 rate line 1e12",
        args: &["replay", "--format", "e4", "--input", "{dir}/e4"],
        files: |d| e4_with(d, "EDA.csv", |t| set_line(t, 1, "1e12")),
        expect: Expect::Error(&["EDA.csv:2:1", "sample rate", "between 0.01 and 100000 Hz"]),
    },
    Case {
        name: "E4 rate line 1e-9",
        args: &["replay", "--format", "e4", "--input", "{dir}/e4"],
        files: |d| e4_with(d, "EDA.csv", |t| set_line(t, 1, "1e-9")),
        expect: Expect::Error(&["EDA.csv:2:1", "sample rate"]),
    },
    Case {
        name: "E4 start time in the year 33658",
        args: &["replay", "--format", "e4", "--input", "{dir}/e4"],
        files: |d| e4_with(d, "TEMP.csv", |t| set_line(t, 0, "1e12")),
        expect: Expect::Error(&["TEMP.csv:1:1", "start time"]),
    },
    Case {
        name: "E4 file with its header lines only",
        args: &["replay", "--format", "e4", "--input", "{dir}/e4"],
        files: |d| e4_with(d, "TEMP.csv", |t| t.lines().take(2).collect::<Vec<_>>().join("\n") + "\n"),
        expect: Expect::Ok(&["TEMP.csv: the two header lines and no sample"]),
    },
    Case {
        name: "CSV whose header starts with a UTF-8 BOM keeps its first column",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| {
            let demo = std::fs::read_to_string(repo("data/demo/bio_eventrelated_100hz.csv")).unwrap();
            std::fs::write(d.join("bom.csv"), format!("\u{feff}{demo}")).unwrap();
            let config = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
            let config = config.replace("../data/demo/bio_eventrelated_100hz.csv", "bom.csv");
            std::fs::write(d.join("c.toml"), config).unwrap();
        },
        expect: Expect::Ok(&[]),
    },
    Case {
        name: "replay --speed 1e-300 (due times past any clock)",
        args: &["replay", "--format", "e4", "--input", "{repo}/tests/data/e4-S05-excerpt", "--speed", "1e-300"],
        files: no_files,
        expect: Expect::Error(&["--speed", "must be between 0.001 and"]),
    },
    Case {
        name: "serial silence timeout shorter than the device's period",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| serial_config(d, "rate_hz = 100.0", "rate_hz = 0.2"),
        expect: Expect::Error(&["c.toml:", "silence_timeout_s", "slowest channel"]),
    },
    // Serial sensors: absurd line settings and a required device that is not there.
    Case {
        name: "serial baud of 0",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| serial_config(d, "baud = 115200", "baud = 0"),
        expect: Expect::Error(&["c.toml:", "baud", "must be between 50 and 12000000"]),
    },
    Case {
        name: "serial protocol with a NaN rate",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| serial_config(d, "rate_hz = 100.0", "rate_hz = nan"),
        expect: Expect::Error(&["c.toml:", "rate_hz", "NaN"]),
    },
    Case {
        name: "a required serial device that is absent",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| serial_config(d, "required = false", "required = true"),
        expect: Expect::Error(&["/tmp/biofeedd-serial-absent", "required = true"]),
    },
    Case {
        name: "an optional serial device that is absent passes check",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| serial_config(d, "baud = 115200", "baud = 115200"),
        expect: Expect::Ok(&[]),
    },
    // Files that are not what they claim to be, read with bounded memory.
    Case {
        name: "CSV with a 100 MB header line",
        args: &["replay", "--format", "csv", "--rate", "100", "--input", "{dir}/big.csv"],
        files: |d| std::fs::write(d.join("big.csv"), "ECG".repeat(35_000_000)).unwrap(),
        expect: Expect::Error(&["big.csv", "longer than"]),
    },
    Case {
        name: "CSV from /dev/zero",
        args: &["replay", "--format", "csv", "--rate", "100", "--input", "/dev/zero"],
        files: no_files,
        expect: Expect::Error(&["/dev/zero", "longer than"]),
    },
    // WFDB records that do not match their header.
    Case {
        name: "WFDB absurd signal count",
        args: &["beats", "--wfdb", "{dir}/100"],
        files: |d| wfdb_with(d, |h| h.replacen("100 2 360", "100 99999999999999 360", 1), |b| b),
        expect: Expect::Error(&["100.hea:1:", "signal count"]),
    },
    Case {
        name: "WFDB absurd sampling rate",
        args: &["beats", "--wfdb", "{dir}/100"],
        files: |d| wfdb_with(d, |h| h.replacen("100 2 360", "100 2 1e12", 1), |b| b),
        expect: Expect::Error(&["100.hea:1:", "sampling frequency"]),
    },
    Case {
        name: "WFDB .dat shorter than the header says",
        args: &["beats", "--wfdb", "{dir}/100"],
        files: |d| wfdb_with(d, |h| h.to_string(), |b| b[..b.len() / 3].to_vec()),
        expect: Expect::Error(&["100.dat", "truncated"]),
    },
    Case {
        name: "WFDB empty .dat",
        args: &["beats", "--wfdb", "{dir}/100"],
        files: |d| wfdb_with(d, |h| h.to_string(), |_| Vec::new()),
        expect: Expect::Error(&["100.dat", "no complete frame"]),
    },
    Case {
        name: "WFDB header declaring one signal of a two-signal file",
        args: &["beats", "--wfdb", "{dir}/100"],
        files: |d| {
            wfdb_with(
                d,
                |h| {
                    let mut lines: Vec<&str> = h.lines().collect();
                    lines[0] = "100 1 360 108000";
                    lines.remove(2);
                    lines.join("\n") + "\n"
                },
                |b| b,
            )
        },
        expect: Expect::Error(&["100.dat", "fewer signals"]),
    },
    Case {
        name: "WFDB signals sharing a file in two storage formats",
        args: &["beats", "--wfdb", "{dir}/100"],
        files: |d| {
            wfdb_with(d, |h| h.replacen("100.dat 212 200 11 1024 1011", "100.dat 16 200 11 1024 1011", 1), |b| b)
        },
        expect: Expect::Error(&["100.hea:3:", "format 16", "format 212"]),
    },
    Case {
        name: "WFDB header that is a huge file",
        args: &["beats", "--wfdb", "{dir}/100"],
        files: |d| wfdb_with(d, |h| format!("{h}#{}\n", "x".repeat(2 << 20)), |b| b),
        expect: Expect::Error(&["100.hea", "longer than 1048576 bytes"]),
    },
    // Inputs that cannot be what they claim.
    Case {
        name: "hrv on empty input",
        args: &["hrv", "--peaks", "{dir}/peaks", "--rate", "360"],
        files: |d| std::fs::write(d.join("peaks"), "").unwrap(),
        expect: Expect::Error(&["peaks", "at least two beats"]),
    },
    Case {
        name: "config from /dev/zero",
        args: &["check", "--config", "/dev/zero"],
        files: no_files,
        expect: Expect::Error(&["/dev/zero", "bytes"]),
    },
    Case {
        name: "config with an invalid UTF-8 byte",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| std::fs::write(d.join("c.toml"), b"[hub]\nid = \"h\xff\"\n").unwrap(),
        expect: Expect::Error(&["c.toml:2:8", "byte offset 13"]),
    },
    // Settings that silently gave wrong or empty answers.
    Case {
        name: "hop longer than the window",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_config_with(d, "[window]\nlength_s = 60.0\nhop_s = 90.0\n"),
        expect: Expect::Error(&["c.toml:", "window.hop_s", "longer than the 60 s window"]),
    },
    Case {
        name: "baseline_s = 0 under a model that needs z_ features",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_config_with(d, "[features]\nbaseline_s = 0.0\n"),
        expect: Expect::Error(&["baseline_s = 0", "stress-s0"]),
    },
    Case {
        name: "window length zero",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_config_with(d, "[window]\nlength_s = 0.0\n"),
        expect: Expect::Error(&["c.toml:", "window.length_s", "more than 0"]),
    },
    Case {
        name: "[fusion] cache = 0",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_config_with(d, "[fusion]\ncache = 0\n"),
        expect: Expect::Error(&["c.toml:", "fusion.cache", "between 1 and 1000000"]),
    },
    Case {
        name: "manifest calibration temperature 0",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| manifest_with(d, "temperature = 1.5757", "temperature = 0.0"),
        expect: Expect::Error(&["stress-s0.toml", "calibration.temperature"]),
    },
    Case {
        name: "manifest calibration temperature NaN",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| manifest_with(d, "temperature = 1.5757", "temperature = nan"),
        expect: Expect::Error(&["stress-s0.toml", "calibration.temperature", "NaN"]),
    },
    Case {
        name: "manifest calibration temperature -1",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| manifest_with(d, "temperature = 1.5757", "temperature = -1.0"),
        expect: Expect::Error(&["stress-s0.toml", "calibration.temperature", "not -1"]),
    },
    Case {
        name: "pmd replay of a CSV file",
        args: &["replay", "--format", "pmd", "--input", "{repo}/data/demo/bio_eventrelated_100hz.csv"],
        files: no_files,
        expect: Expect::Error(&["bio_eventrelated_100hz.csv", "not a BLE capture"]),
    },
    Case {
        name: "pmd replay of an empty file",
        args: &["replay", "--format", "pmd", "--input", "{dir}/empty.capture"],
        files: |d| std::fs::write(d.join("empty.capture"), b"").unwrap(),
        expect: Expect::Error(&["empty.capture", "too short to be a BLE capture"]),
    },
    Case {
        name: "capture header with an absurd rate",
        args: &["replay", "--format", "pmd", "--input", "{dir}/bad.capture"],
        files: |d| {
            let header = "biofeedd BLE capture v1\n{\"streams\":[{\"kind\":\"ecg\",\"rate_hz\":1e300,\"resolution\":14,\"range\":null}]}\n";
            std::fs::write(d.join("bad.capture"), header).unwrap()
        },
        expect: Expect::Error(&["bad.capture", "rate_hz", "between"]),
    },
    Case {
        name: "h10 recording whose record claims 4 GB",
        args: &["replay", "--format", "pmd", "--input", "{dir}/huge.bin"],
        files: |d| {
            let mut bytes = b"H10 ECG v1.0 binary data".to_vec();
            bytes.extend(u32::MAX.to_le_bytes());
            std::fs::write(d.join("huge.bin"), bytes).unwrap()
        },
        expect: Expect::Error(&["huge.bin", "at most 512"]),
    },
    Case {
        name: "h10 recording of garbage frames",
        args: &["replay", "--format", "pmd", "--input", "{dir}/garbage.bin"],
        files: |d| {
            let mut bytes = b"H10 ECG v1.0 binary data".to_vec();
            for k in 0..200u32 {
                bytes.extend(229u32.to_le_bytes());
                // An ECG frame's type byte, then noise: bad frame types, timestamps that jump back.
                bytes.push(0);
                bytes.extend((1..229u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(k * 7919)) as u8));
            }
            std::fs::write(d.join("garbage.bin"), bytes).unwrap()
        },
        expect: Expect::Ok(&["notifications could not be decoded (first: "]),
    },
    Case {
        name: "hrs replay of an ECG-only recording",
        args: &["replay", "--format", "hrs", "--input", "{dir}/h10.bin"],
        files: |d| std::fs::write(d.join("h10.bin"), b"H10 ECG v1.0 binary data").unwrap(),
        expect: Expect::Error(&["h10.bin", "no heart rate stream", "--format pmd"]),
    },
    Case {
        name: "ble source with neither address nor name",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| {
            let config = std::fs::read_to_string(repo("config/ble-polar.toml")).unwrap();
            std::fs::write(d.join("c.toml"), config.replacen("name = \"Polar H10\"", "", 1)).unwrap()
        },
        expect: Expect::Error(&["c.toml", "sensor[0].source.address", "needs `address` or `name`"]),
    },
    // [mqtt]: numbers rumqttc would panic on, secrets where they would be logged, bad files.
    Case {
        name: "mqtt keep-alive below rumqttc's minimum",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1883\"\nkeep_alive_s = 1"),
        expect: Expect::Error(&["mqtt.keep_alive_s", "between 5 and 3600"]),
    },
    Case {
        name: "mqtt password in the URL",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://hub:hunter2@127.0.0.1:1883\""),
        expect: Expect::Error(&["mqtt.url", "credentials do not belong in the URL"]),
    },
    Case {
        name: "mqtt password file missing",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| {
            demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1883\"\nusername = \"hub\"\npassword_file = \"nope.txt\"")
        },
        expect: Expect::Error(&["mqtt.password_file", "nope.txt"]),
    },
    Case {
        name: "mqtts CA file that is not PEM",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| {
            std::fs::write(d.join("ca.pem"), [0u8, 159, 146, 150, 1, 2, 3]).unwrap();
            demo_with_mqtt(d, "url = \"mqtts://127.0.0.1:8883\"\n[mqtt.tls]\nca_file = \"ca.pem\"");
        },
        expect: Expect::Error(&["mqtt.url", "tls.ca_file", "ca.pem"]),
    },
    Case {
        name: "mqtt plaintext to another host",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://192.0.2.7:1883\""),
        expect: Expect::Error(&["mqtt.url", "allow_insecure"]),
    },
    Case {
        name: "mqtt outbox bound of 0 MiB",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1883\"\noutbox_max_mb = 0"),
        expect: Expect::Error(&["mqtt.outbox_max_mb", "between 0.25 and"]),
    },
    Case {
        name: "an outbox segment of random bytes, broker unreachable",
        args: &["run", "--config", "{dir}/c.toml", "--speed", "max", "--output", "quiet"],
        files: |d| {
            let outbox = d.join("outbox/biofeedd-demo-hub");
            std::fs::create_dir_all(&outbox).unwrap();
            let junk: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
            std::fs::write(outbox.join("0000000000000007.seg"), junk).unwrap();
            demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1\"\nconnect_timeout_s = 0.2\noutbox_dir = \"outbox\"");
        },
        expect: Expect::Error(&["0000000000000007.seg", "cut the last", "never reached"]),
    },
    // The governor, tiers, policy and offload tables.
    Case {
        name: "offload over MQTT 3.1.1",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1883\"\nprotocol = \"3.1.1\"\n[offload]"),
        expect: Expect::Error(&["mqtt.protocol", "offload needs MQTT 5"]),
    },
    Case {
        name: "a basic tier tighter than premium",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1883\"\n[tiers.deadline_ms]\nbasic = 5"),
        expect: Expect::Error(&["tiers.deadline_ms.basic", "tighter than the standard"]),
    },
    Case {
        name: "a tier for a subject no sensor has",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1883\"\n[tiers.subjects]\ns99 = \"premium\""),
        expect: Expect::Error(&["tiers.subjects", "no [[sensor]] has subject `s99`"]),
    },
    Case {
        name: "a policy running no stage on the hub",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1883\"\n[policy.critical]\nlocal_stages = 0"),
        expect: Expect::Error(&["policy.critical.local_stages", "nothing to answer with"]),
    },
    Case {
        name: "a governor sampling 0 times a second",
        args: &["check", "--config", "{dir}/c.toml"],
        files: |d| demo_with_mqtt(d, "url = \"mqtt://127.0.0.1:1883\"\n[governor]\ninterval_s = 0"),
        expect: Expect::Error(&["governor.interval_s", "between 0.2 and 60"]),
    },
    Case {
        name: "a worker without a broker",
        args: &["worker", "--config", "{dir}/c.toml"],
        files: |d| std::fs::write(d.join("c.toml"), "[hub]\nid = \"w\"\n").unwrap(),
        expect: Expect::Error(&["a worker needs [mqtt]"]),
    },
];
/// The demo config running only stage 0, whose manifest has `from` replaced by `to`.
fn manifest_with(dir: &Path, from: &str, to: &str) {
    let manifest = std::fs::read_to_string(repo("models/stress-s0.toml")).unwrap();
    assert!(manifest.contains(from));
    std::fs::write(dir.join("stress-s0.toml"), manifest.replace(from, to)).unwrap();
    std::fs::copy(repo("models/stress-s0.onnx"), dir.join("stress-s0.onnx")).unwrap();
    demo_config_with(dir, "[fusion]\nmodel = \"stress-s0.toml\"\n");
}

/// The demo config with its `[window]`/`[features]` tables replaced by `tables`.
fn demo_config_with(dir: &Path, tables: &str) {
    let demo = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in demo.lines() {
        if line.starts_with('[') {
            skipping = line == "[window]" || line == "[features]" || line == "[fusion]";
        }
        if !skipping {
            out.push_str(&line.replace("../data/demo", repo("data/demo").to_str().unwrap()));
            out.push('\n');
        }
    }
    std::fs::write(dir.join("c.toml"), format!("{tables}\n{out}")).unwrap();
}

/// The demo config with its `[mqtt]` table replaced by `[mqtt]` + `table`.
fn demo_with_mqtt(dir: &Path, table: &str) {
    let demo = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
    let head = &demo[..demo.find("[mqtt]").expect("the demo has [mqtt]")];
    let head = head.replace("../data/demo", repo("data/demo").to_str().unwrap());
    std::fs::write(dir.join("c.toml"), format!("{head}[mqtt]\n{table}\n")).unwrap();
}

/// Run one case; returns (exit code or signal, stderr).
fn run(case: &Case) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    (case.files)(dir.path());
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| a.replace("{dir}", dir.path().to_str().unwrap()).replace("{repo}", repo("").to_str().unwrap()))
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_biofeedd"))
        .args(&args)
        .env("BIOFEEDD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("{}: still running after {LIMIT:?} (a hang)", case.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

#[test]
fn every_hostile_input_ends_in_time_without_a_panic_and_bad_input_is_named() {
    let mut failures = Vec::new();
    for case in CASES {
        let (status, stderr) = run(case);
        let problem = if let Some(signal) = status.signal() {
            Some(format!("killed by signal {signal}"))
        } else if stderr.contains("panicked") || status.code() == Some(101) {
            Some("panicked".to_string())
        } else {
            match case.expect {
                Expect::Error(words) if status.success() => Some(format!("exit 0; expected an error naming {words:?}")),
                Expect::Ok(_) if !status.success() => Some(format!("exit {status}; expected success")),
                Expect::Error(words) | Expect::Ok(words) => {
                    words.iter().find(|w| !stderr.contains(*w)).map(|w| format!("stderr does not name `{w}`"))
                }
            }
        };
        if let Some(problem) = problem {
            failures.push(format!("{}: {problem}\n  stderr: {}", case.name, stderr.trim()));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

/// `| head -1`: the reader goes away after one line; the process ends quietly, the summary is
/// not lost (it goes to stderr).
#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let commands: [&[&str]; 3] = [
        &["run", "--config", "config/demo.toml", "--speed", "max"],
        &["replay", "--format", "e4", "--input", "tests/data/e4-S05-excerpt"],
        &["eval", "--input", "tests/data/stress-eval", "--labels", "tests/data/stress-eval/labels.csv"],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_biofeedd"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("BIOFEEDD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        // The reader is dropped here: stdout is now a closed pipe.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!first.is_empty(), "{args:?}: a first line");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {} {stderr}", out.status);
        if args[0] == "run" {
            assert!(stderr.contains("summary:"), "{args:?}: the summary went to stderr: {stderr}");
        }
    }
}
