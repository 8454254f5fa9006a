//! `dsma report`: one self-contained HTML file of a small run, rendered by a real browser
//! (Debian's chromium, headless: `.ci/run` installs it and sets `DSMA_REQUIRE_CHROMIUM=1`).

use std::path::Path;
use std::process::Command;

use crate::support::{dsma, run_own_root, tiny_experiment};

/// Share of pixels of an RGB(A) PNG that differ from white by more than 30 in some channel.
fn non_white_share(path: &Path) -> f64 {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let px = &buf[..info.buffer_size()];
    let total = px.len() / channels;
    let inked = px
        .chunks(channels)
        .filter(|p| p[..3].iter().any(|c| *c < 225))
        .count();
    inked as f64 / total as f64
}

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Headless chromium with the flags a closed network needs (no background connections).
fn headless(browser: &str, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn the_report_of_a_small_run_is_self_contained_and_renders_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "  - label: baseline\n  - label: DTSS+MAS\n    synthesizer: {name: dtss}\n    weighter: {name: mas}\n";
    let exp = tiny_experiment(tmp.path(), 2, 2, rows);
    let out = tmp.path().join("out");
    let (code, _, stderr) = run_own_root(exp.to_str().unwrap(), &out, &["--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    let html_path = tmp.path().join("report.html");
    let (code, stdout, stderr) = dsma(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        html_path.to_str().unwrap(),
        "--cases",
        "1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("wrote"), "{stdout}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    // Self-contained: images inline, nothing fetched.
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("src=\"/") && !html.contains("src=\"file:"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("url("));
    let images = html.matches("src=\"data:image/png;base64,").count();
    // Fig. 4, the MAS trajectories, Fig. 5 and two runs' curves at least.
    assert!(images >= 5, "{images} images");
    for want in [
        "id=\"table-dice\"",
        "DTSS+MAS",
        "baseline",
        "Resolved experiment",
        "commit",
    ] {
        assert!(html.contains(want), "{want} missing");
    }

    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("DSMA_REQUIRE_CHROMIUM").is_none(),
            "DSMA_REQUIRE_CHROMIUM is set but no chromium in /usr/bin"
        );
        eprintln!("skipped the browser half: no /usr/bin/chromium (apt-get install chromium)");
        return;
    };
    let url = format!("file://{}", html_path.display());
    let dom = headless(browser, &tmp.path().join("profile-dom"))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The browser parsed the table: its DOM has the table, a body row and the images.
    assert!(dom.contains("<table id=\"table-dice\">"), "{dom}");
    assert!(dom.contains("<th>DTSS+MAS</th>"), "{dom}");
    assert!(dom.matches("<img ").count() >= 5);

    let shot = tmp.path().join("shot.png");
    let status = headless(browser, &tmp.path().join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1280,1600", &url])
        .status()
        .unwrap();
    assert!(status.success());
    // Rendered: text, table borders and figures ink well over 1 % of a 1280×1600 page.
    let share = non_white_share(&shot);
    assert!(share > 0.01, "screenshot nearly blank: {share}");
}
