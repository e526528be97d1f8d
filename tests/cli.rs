//! The command line as a user meets it: the real binary, real files, bad input.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn biofeedd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_biofeedd"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("BIOFEEDD_LOG", "warn")
        .output()
        .expect("run biofeedd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Assert the command failed and return its stderr, where the error message is.
fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure; stdout: {}", text(&out.stdout));
    text(&out.stderr)
}

/// Write `config` (with `{demo}` standing for the bundled recording's path) and return its path.
fn write_config(dir: &Path, config: &str) -> String {
    let demo = common::repo_path("data/demo/bio_eventrelated_100hz.csv");
    let path = dir.join("test.toml");
    std::fs::write(&path, config.replace("{demo}", demo.to_str().unwrap())).unwrap();
    path.to_str().unwrap().to_string()
}

const CONFIG: &str = r#"[hub]
id = "cli-test"

[features]
baseline_s = 75.0

[[sensor]]
id = "chest"
subject = "p1"
[sensor.source]
kind = "replay"
format = "csv"
path = "{demo}"
rate_hz = 100.0
channels = [
  { column = "ECG", modality = "ecg", unit = "mV" },
  { column = "EDA", modality = "eda", unit = "uS" },
]
"#;

#[test]
fn check_accepts_the_demo_config() {
    let out = biofeedd(&["check", "--config", "config/demo.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK"), "{}", text(&out.stdout));
}

#[test]
fn check_names_file_line_column_and_fix_for_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &CONFIG.replace("rate_hz = 100.0", "rate_hz = 100.0\nrate = 5"));
    let out = biofeedd(&["check", "--config", &path]);
    let err = failure(&out);
    assert!(err.contains(&format!("{path}:15:1: unknown field `rate`")), "{err}");
    assert!(err.contains("help:"), "{err}");
}

#[test]
fn check_warns_of_a_model_the_channels_cannot_feed_and_refuses_it_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG.replace("  { column = \"EDA\", modality = \"eda\", unit = \"uS\" },\n", "");
    let out = biofeedd(&["check", "--config", &write_config(dir.path(), &config)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let warning = text(&out.stderr);
    assert!(warning.contains("needs feature `z_eda_mean_us` (from a eda channel)"), "{warning}");
    assert!(warning.contains("`p1` gets features and quality every window and `unknown`"), "{warning}");
    let required = format!("{config}\n[fusion]\nrequired = true\n");
    let err = failure(&biofeedd(&["check", "--config", &write_config(dir.path(), &required)]));
    assert!(err.contains("subject `p1` has only: ecg") && err.contains("drop `[fusion] required`"), "{err}");
}

#[test]
fn the_chest_strap_model_answers_for_an_ecg_only_record() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::repo_path("models/stress-hr.toml");
    let config =
        format!("[hub]\nid = \"strap\"\n[features]\nbaseline_s = 90.0\n[fusion]\nmodel = \"{}\"\n", model.display());
    let path = dir.path().join("strap.toml");
    std::fs::write(&path, config).unwrap();
    let args = ["replay", "--format", "wfdb", "--input", "tests/data/mitdb-100-5min/100", "--output", "jsonl"];
    let out = biofeedd(&[&args[..], &["--config", path.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // After the 90 s baseline, every window is answered from the ECG's heart features.
    let answered: Vec<&Value> = lines.iter().filter(|w| w["label"] != "unknown").collect();
    assert!(answered.len() >= 25, "{} of {} windows answered", answered.len(), lines.len());
    for w in answered {
        assert_eq!((w["model"].as_str(), w["source"].as_str()), (Some("stress-hr"), Some("edge")), "{w}");
        let p: f64 = w["probabilities"].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-4, "{w}");
    }
}

#[test]
fn an_ecg_only_record_gets_heart_rate_every_window_and_unknown_with_the_reason() {
    // Chest straps are ECG only: the wrist stress model cannot be fed, the features still can.
    let out = biofeedd(&[
        "replay",
        "--format",
        "wfdb",
        "--input",
        "tests/data/mitdb-100-5min/100",
        "--speed",
        "max",
        "--output",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 40, "{} windows", lines.len());
    for w in &lines {
        assert_eq!(w["label"], "unknown");
        let reason = w["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("no configured model can be fed: model `stress-s0` needs feature `z_eda_mean_us`"),
            "{reason}"
        );
        // Record 100 is a resting adult at about 75 bpm.
        let hr = w["features"]["hr_mean_bpm"].as_f64().unwrap();
        assert!((60.0..90.0).contains(&hr), "{hr}");
        assert!(w["features"]["quality_cardiac"].as_f64().unwrap() > 0.5, "{w}");
    }
}

#[test]
fn a_model_whose_onnx_does_not_match_its_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(common::repo_path("models/stress-s0.toml")).unwrap();
    std::fs::write(dir.path().join("m.toml"), manifest.replace("stress-s0.onnx", "m.onnx")).unwrap();
    let mut onnx = std::fs::read(common::repo_path("models/stress-s0.onnx")).unwrap();
    let last = onnx.len() - 1;
    onnx[last] ^= 0xff;
    std::fs::write(dir.path().join("m.onnx"), onnx).unwrap();
    let config = format!("{CONFIG}\n[fusion]\nmodel = \"m.toml\"\n");
    let out = biofeedd(&["check", "--config", &write_config(dir.path(), &config)]);
    let err = failure(&out);
    assert!(err.contains("m.toml") && err.contains("SHA-256"), "{err}");
}

#[test]
fn a_garbled_row_is_an_error_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rec.csv");
    let mut body = String::from("ECG,EDA\n");
    for i in 0..100 {
        body.push_str(&format!("{},{}\n", (i as f32 * 0.1).sin(), 5.0));
    }
    body.push_str("0.1,5.0x\n");
    std::fs::write(&csv, body).unwrap();
    let config = CONFIG.replace("{demo}", csv.to_str().unwrap());
    let out = biofeedd(&["run", "--config", &write_config(dir.path(), &config), "--speed", "max"]);
    let err = failure(&out);
    assert!(err.contains(&format!("{}:102:5: `5.0x` is not a number", csv.display())), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_garbled_row_deep_in_a_recording_ends_the_replay_after_delivering_what_came_before() {
    // Replay streams the file: the rows before the bad one were played (and their windows
    // published) before it was read.
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(common::repo_path("data/demo/bio_eventrelated_100hz.csv")).unwrap();
    let mut lines: Vec<&str> = demo.lines().collect();
    lines[9001] = "0.1,garbled,5.0,0.7";
    let csv = dir.path().join("late.csv");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let config = CONFIG.replace("{demo}", csv.to_str().unwrap());
    let out = biofeedd(&["run", "--config", &write_config(dir.path(), &config), "--speed", "max", "--output", "jsonl"]);
    let err = failure(&out);
    assert!(err.contains(&format!("{}:9002:", csv.display())) && err.contains("`garbled`"), "{err}");
    assert!(err.contains("failed: sensor `"), "the summary names the failed sensor: {err}");
    // 90 s of data before the bad row: 60 s windows every 5 s ending at 60..=90 s, the last
    // perhaps dropped as partial when the stream ends.
    let windows = text(&out.stdout).lines().count();
    assert!((6..=7).contains(&windows), "{windows} windows before the bad row\n{err}");
}

#[test]
fn a_gap_and_a_truncated_row_become_flagged_gaps_when_skipping() {
    // The demo recording with a truncated row and 10 s cut out, replayed with a time column.
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(common::repo_path("data/demo/bio_eventrelated_100hz.csv")).unwrap();
    let mut body = String::from("t,ECG,EDA\n");
    for (i, line) in demo.lines().skip(1).enumerate() {
        if (10000..11000).contains(&i) {
            continue; // a 10 s hole in the recording
        }
        let fields: Vec<&str> = line.split(',').collect();
        if i == 12000 {
            body.push_str(&format!("{:.2},{}\n", i as f64 / 100.0, fields[0])); // truncated row
        } else {
            body.push_str(&format!("{:.2},{},{}\n", i as f64 / 100.0, fields[0], fields[1]));
        }
    }
    let csv = dir.path().join("gappy.csv");
    std::fs::write(&csv, body).unwrap();
    let config = CONFIG
        .replace("{demo}", csv.to_str().unwrap())
        .replace("rate_hz = 100.0", "rate_hz = 100.0\ntime_column = \"t\"\non_bad_row = \"skip\"");
    let out = biofeedd(&["run", "--config", &write_config(dir.path(), &config), "--speed", "max", "--output", "jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let windows: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(windows.len(), 19);
    let flagged = |w: &Value| {
        w["quality"].as_array().unwrap().iter().any(|q| q["flags"].as_array().unwrap().iter().any(|f| f == "gap"))
    };
    // The ten windows overlapping the 100..110 s hole (starts 45..90 s) carry the gap flag and no
    // other does; the single skipped row at 120 s is within the one sample of jitter a window
    // forgives, but it is counted in the summary.
    let flags: Vec<bool> = windows.iter().map(flagged).collect();
    assert_eq!(flags, (0..19).map(|i| (9..=18).contains(&i)).collect::<Vec<_>>());
    assert!(text(&out.stderr).contains("1 bad rows skipped"), "{}", text(&out.stderr));
}

#[test]
fn replay_e4_prints_only_json_lines_on_the_recording_clock() {
    let out = biofeedd(&[
        "replay",
        "--format",
        "e4",
        "--input",
        "tests/data/e4-S05-excerpt",
        "--speed",
        "max",
        "--output",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    // 150 s excerpt, 60 s windows every 5 s.
    assert_eq!(lines.len(), 19, "{}", text(&out.stdout));
    for (i, line) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line).expect("every stdout line is JSON");
        // The excerpt starts at S05's E4 start time.
        let end = v["window_end"].as_f64().unwrap();
        assert!((end - (1644829925.0 + 60.0 + 5.0 * i as f64)).abs() < 1e-6, "{end}");
        let label = v["label"].as_str().unwrap();
        assert!(["stress", "rest", "unknown"].contains(&label));
        if label != "unknown" {
            let p = v["probabilities"].as_object().unwrap();
            assert!(p.contains_key("stress") && p.contains_key("rest"));
        }
    }
    assert!(text(&out.stderr).contains("summary: 19 windows"));
}

#[test]
fn features_list_and_dump_agree() {
    let list = biofeedd(&["features", "--list"]);
    let names: Vec<String> = text(&list.stdout).lines().map(String::from).collect();
    assert!(names.contains(&"hr_mean_bpm".to_string()));
    let dump = biofeedd(&["features", "--format", "e4", "--input", "tests/data/e4-S05-excerpt"]);
    assert!(dump.status.success(), "{}", text(&dump.stderr));
    let out = text(&dump.stdout);
    let header: Vec<&str> = out.lines().next().unwrap().split(',').collect();
    assert_eq!(&header[..4], ["subject", "seq", "window_start", "window_end"]);
    assert_eq!(header[4..], names.iter().map(String::as_str).collect::<Vec<_>>()[..]);
    assert_eq!(out.lines().count(), 20, "header + 19 windows");
}

#[test]
fn a_missing_recording_is_a_clear_error() {
    let out = biofeedd(&["replay", "--format", "e4", "--input", "no/such/folder"]);
    let err = failure(&out);
    assert!(err.contains("no/such/folder") && err.contains("not a folder"), "{err}");
}

#[test]
fn sigterm_stops_a_real_time_run_cleanly_with_a_summary() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // 4× real time with a 10 s window: the first feedback arrives after about 2.5 s.
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG.replace("[[sensor]]", "[window]\nlength_s = 10.0\nhop_s = 1.0\n\n[[sensor]]");
    let path = write_config(dir.path(), &config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_biofeedd"))
        .args(["run", "--config", &path, "--speed", "4"])
        .env("BIOFEEDD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("p1 #0"), "{first}");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit 0 after SIGTERM: {exit:?}");
    assert!(rest.contains("summary:"), "{rest}");
    let windows = rest.lines().filter(|l| l.starts_with("p1 #")).count() + 1;
    assert!(windows < 30, "stopped early, not at the end of the 150 s recording: {windows} windows");
}

#[test]
fn beats_prints_one_r_peak_index_per_line() {
    let out = biofeedd(&["beats", "--wfdb", "tests/data/mitdb-100-5min/100"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let peaks: Vec<usize> = text(&out.stdout).lines().map(|l| l.parse().expect("an integer per line")).collect();
    // 5 minutes of record 100 hold 371 annotated beats (about 74 per minute).
    assert!((365..=377).contains(&peaks.len()), "{} peaks", peaks.len());
    assert!(peaks.windows(2).all(|w| w[0] < w[1]));
    let bad = biofeedd(&["beats", "--wfdb", "tests/data/mitdb-100-5min/100", "--channel", "7"]);
    let err = failure(&bad);
    assert!(err.contains("has 2 signals"), "{err}");
}

#[test]
fn events_prints_the_detectors_findings_as_csv() {
    let e4 = "tests/data/e4-S05-excerpt";
    let out = biofeedd(&["events", "--kind", "ppg", "--format", "e4", "--input", e4]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("sample,time_s,foot_sample,amplitude"));
    let pulses: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    // 150 s of wrist BVP at rest: a pulse every 0.5–1.5 s, each foot before its peak.
    assert!((100..=300).contains(&pulses.len()), "{} pulses", pulses.len());
    assert!(pulses.iter().all(|p| p[2] < p[0] && p[3] > 0.0));
    assert!(pulses[0][1] > 1.5e9, "times on the recording's unix clock");

    let out = biofeedd(&["events", "--kind", "scr", "--format", "e4", "--input", e4]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("sample,time_s,onset_sample,amplitude_us,rise_s\n"), "{stdout}");
    for row in stdout.lines().skip(1) {
        let v: Vec<f64> = row.split(',').map(|x| x.parse().unwrap()).collect();
        assert!(v[2] < v[0] && v[3] >= 0.01 && (0.5..=5.0).contains(&v[4]), "{row}");
    }

    let err = failure(&biofeedd(&["events", "--kind", "ecg", "--format", "e4", "--input", e4]));
    assert!(err.contains("no channel of that kind") && err.contains("bvp"), "{err}");
}

/// Run `command` (features or replay) over the committed E4 excerpt with a config made of
/// `settings`, as JSON lines; the output, and the config's path for further runs.
fn e4_excerpt_with(dir: &Path, command: &str, settings: &str) -> (Output, String) {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, format!("[hub]\nid = \"t\"\n{settings}")).unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let args =
        [command, "--config", &cfg, "--format", "e4", "--input", "tests/data/e4-S05-excerpt", "--output", "jsonl"];
    (biofeedd(&args), cfg)
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn z_features_start_after_the_baseline_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = e4_excerpt_with(dir.path(), "features", "[features]\nbaseline_s = 80.0\n");
    let rows = json_lines(&out);
    let t0 = rows[0]["window_start"].as_f64().unwrap();
    for r in &rows {
        let calibrating = r["window_end"].as_f64().unwrap() <= t0 + 80.0;
        let z = &r["z_eda_mean_us"];
        assert_eq!(z.is_null(), calibrating, "window ending {}: z_eda_mean_us {z}", r["window_end"]);
    }
    assert!(rows.iter().any(|r| !r["z_hr_mean_bpm"].is_null()), "heart rate is scored against its baseline");

    let (out, _) = e4_excerpt_with(dir.path(), "features", "[features]\nbaseline_s = 30.0\n");
    let err = failure(&out);
    assert!(err.contains("features.baseline_s") && err.contains("shorter than one 60 s window"), "{err}");
    let (out, _) = e4_excerpt_with(dir.path(), "features", "[features]\nbaseline_s = 65.0\n");
    let err = failure(&out);
    assert!(err.contains("fewer than the three windows") && err.contains("at least 70 s"), "{err}");
}

#[test]
fn replay_runs_a_configured_cascade() {
    let dir = tempfile::tempdir().unwrap();
    let models = common::repo_path("models");
    let settings = format!(
        "[features]\nbaseline_s = 80.0\n[fusion]\nstages = [\"{0}/stress-s0.toml\", \"{0}/stress-s1.toml\"]\n",
        models.display()
    );
    let rows = json_lines(&e4_excerpt_with(dir.path(), "replay", &settings).0);
    let unknown: Vec<&Value> = rows.iter().filter(|r| r["label"] == "unknown").collect();
    assert!(!unknown.is_empty(), "the first windows wait for the baseline");
    assert!(unknown.iter().all(|r| r["reason"].as_str().unwrap().contains("baseline")));
    let stages: std::collections::BTreeSet<(i64, String)> = rows
        .iter()
        .filter(|r| r["label"] != "unknown")
        .map(|r| (r["exit_stage"].as_i64().unwrap(), r["model"].as_str().unwrap().to_string()))
        .collect();
    assert!(!stages.is_empty() && stages.iter().all(|(k, m)| m == &format!("stress-s{k}")), "{stages:?}");

    let (out, _) = e4_excerpt_with(dir.path(), "replay", "[fusion]\nmodel = \"a.toml\"\nstages = [\"b.toml\"]\n");
    let err = failure(&out);
    assert!(err.contains("either `model` or `stages`"), "{err}");
}

#[test]
fn wfdb_records_replay_into_features() {
    let out =
        biofeedd(&["features", "--format", "wfdb", "--input", "tests/data/mitdb-100-5min/100", "--output", "jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 49, "300 s, 60 s windows every 5 s");
    let hr = rows[0]["hr_mean_bpm"].as_f64().expect("heart rate from MLII");
    assert!((65.0..85.0).contains(&hr), "{hr}");
}

#[test]
fn replay_takes_settings_from_a_config_without_sensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, "[hub]\nid = \"lab\"\n[window]\nlength_s = 60.0\nhop_s = 30.0\n").unwrap();
    let out = biofeedd(&[
        "replay",
        "--format",
        "e4",
        "--input",
        "tests/data/e4-S05-excerpt",
        "--config",
        path.to_str().unwrap(),
        "--output",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "150 s, 60 s windows every 30 s");
    assert_eq!(lines[0]["hub"], "lab");
}

/// `biofeedd eval` of the model at `manifest` alone, with the bundled cascade's window and baseline.
fn eval_alone(manifest: &Path) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[hub]\nid = \"eval\"\n[window]\nlength_s = 60.0\nhop_s = 5.0\n[features]\nbaseline_s = 300.0\n[fusion]\nmodel = \"{}\"\n",
        manifest.display()
    );
    let path = dir.path().join("alone.toml");
    std::fs::write(&path, config).unwrap();
    eval_json(&["--config", path.to_str().unwrap()])
}

/// `biofeedd eval --json` on the committed evaluation set, with `extra` arguments.
fn eval_json(extra: &[&str]) -> Value {
    let args = [
        "eval",
        "--input",
        "tests/data/stress-eval",
        "--labels",
        "tests/data/stress-eval/labels.csv",
        "--exclude-task",
        "hyperventilation",
        "--json",
    ];
    let out = biofeedd(&[&args[..], extra].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object")
}

#[test]
fn eval_reproduces_the_manifests_metrics_on_the_committed_evaluation_set() {
    let report = eval_json(&[]);
    let models = report["models"].as_object().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(common::repo_path("models")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = manifest["name"].as_str().unwrap();
        let expected = manifest["metrics"]["eval"].as_table().unwrap_or_else(|| panic!("{name}: no [metrics.eval]"));
        // A model outside the bundled cascade (the chest-strap `stress-hr`) is scored alone.
        let alone;
        let got = match models.get(name) {
            Some(got) => got,
            None => {
                alone = eval_alone(&path);
                &alone["models"][name]
            }
        };
        // The manifests were measured through onnxruntime on the windows `biofeedd features`
        // cut; eval runs tract on its own windowing of the same recording. Same windows; the
        // probabilities agree to float rounding (int8: to its quantisation), so the scores may
        // move by a window or two.
        assert_eq!(got["windows"].as_i64(), expected["windows"].as_integer(), "{name}");
        for (key, tol) in [("balanced_accuracy", 0.01), ("f1", 0.015), ("auroc", 0.005)] {
            let (g, e) = (got[key].as_f64().unwrap(), expected[key].as_float().unwrap());
            assert!((g - e).abs() <= tol, "{name} {key}: eval {g}, manifest {e}");
        }
        checked += 1;
    }
    assert_eq!(checked, 7, "every stage variant and the chest-strap model");
    let cascade = &models["cascade"];
    assert!(cascade["balanced_accuracy"].as_f64().unwrap() > 0.5, "{cascade}");
    let exits: Vec<u64> = report["cascade_exits"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(exits.iter().sum::<u64>(), cascade["windows"].as_u64().unwrap());
}

#[test]
fn eval_names_a_bad_labels_file() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.csv");
    std::fs::write(&labels, "subject,label,task,start_unix,end_unix\nS05,1,stroop,1644830599,later\n").unwrap();
    let out = biofeedd(&["eval", "--input", "tests/data/stress-eval", "--labels", labels.to_str().unwrap()]);
    let err = failure(&out);
    assert!(err.contains(&format!("{}: line 2: end_unix `later` is not a number", labels.display())), "{err}");
}

#[test]
fn features_dump_the_raw_window_stage_2_reads_one_tensor_per_row() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.f32");
    let dump = |spec: &str| {
        let args = ["features", "--format", "e4", "--input", "tests/data/e4-S05-excerpt", "--output", "jsonl"];
        biofeedd(&[&args[..], &["--raw-spec", spec, "--raw-output", raw.to_str().unwrap()]].concat())
    };
    let rows = json_lines(&dump("models/train/raw.toml"));
    let bytes = std::fs::read(&raw).unwrap();
    // Four rows (PPG, EDA, TEMP, ACC magnitude) of 480 samples, as models/train/raw.toml says.
    assert_eq!(bytes.len(), rows.len() * 4 * 480 * 4, "{} rows", rows.len());
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert!(values.iter().all(|v| v.is_finite()), "every window of the excerpt has every channel");
    // The PPG row is z-scored within its window.
    let ppg = &values[..480];
    let mean = ppg.iter().sum::<f32>() / 480.0;
    assert!(mean.abs() < 1e-3, "{mean}");

    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "[raw]\nrate_hz = 8.0\nlength = 0\nchannels = [{ modality = \"ppg\" }]\n").unwrap();
    let err = failure(&dump(spec.to_str().unwrap()));
    assert!(err.contains(&format!("{}: inputs.raw.length 0 is outside", spec.display())), "{err}");
}
