//! Packaging: the systemd unit generator (structure, hardening, `systemd-analyze verify` and
//! its exposure score when systemd is installed), the daemon-less OCI image layout (digests,
//! sizes, config, exactly the expected files, the executable byte-identical to the built
//! one, a dynamically linked executable refused), and — `#[ignore]`d, run by `.ci/run` with
//! `--ignored`, because a static `dist` build takes minutes — the static executable
//! (`file`/`ldd`/ELF say static; `--version`, `--simulate` with input on stdin, `--check` and
//! `--doctor` run with an empty environment apart from the bot's own variables, in an empty
//! chroot when the test runs as root) and the image scripts/build-image makes of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("st2bot-packaging-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `[Section]` → key → values (a key may repeat).
fn parse_unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            sections.entry(current.clone()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not `key=value`: {line}"));
        assert!(!current.is_empty(), "{key} outside a section");
        sections
            .get_mut(&current)
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    sections
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let exe = env!("CARGO_BIN_EXE_demo");
    let (ok, unit, err) = run(
        Command::new(format!("{ROOT}/packaging/systemd/generate")).args([
            "--exec",
            exe,
            "--health-listen",
            "127.0.0.1:9180",
            "demo",
        ]),
    );
    assert!(ok, "{err}");
    let sections = parse_unit(&unit);
    let service = &sections["Service"];
    let one = |key: &str| -> &str {
        let values = service
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in\n{unit}"));
        values.last().unwrap()
    };
    assert_eq!(
        one("ExecStart"),
        format!("{exe} --health-listen 127.0.0.1:9180")
    );
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("EnvironmentFile", "-/etc/st2bot/demo.env"),
        ("StateDirectory", "st2bot-demo"),
        ("WorkingDirectory", "%S/st2bot-demo"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "2"),
        ("SuccessExitStatus", "3"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("SystemCallArchitectures", "native"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    assert_eq!(
        service["SystemCallFilter"],
        ["@system-service", "~@privileged @resources"]
    );
    assert!(!service.contains_key("User"), "DynamicUser picks the user");
    assert_eq!(sections["Install"]["WantedBy"], ["multi-user.target"]);
    assert_eq!(sections["Unit"]["After"], ["network-online.target"]);

    // Bad names and relative paths are refused.
    for args in [&["../etc"][..], &["--exec", "bin/demo", "demo"], &["Demo"]] {
        let (ok, _, err) =
            run(Command::new(format!("{ROOT}/packaging/systemd/generate")).args(args));
        assert!(!ok && !err.is_empty(), "{args:?} accepted");
    }

    if !have("systemd-analyze") {
        println!(
            "systemd-analyze is not installed: structural checks only (install systemd to also verify the unit)"
        );
        return;
    }
    let dir = temp_dir("systemd");
    let path = dir.join("st2bot-demo.service");
    std::fs::write(&path, &unit).unwrap();
    let (ok, out, err) = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(
        ok && !err.contains("st2bot-demo.service"),
        "systemd-analyze verify:\n{out}{err}"
    );
    let (ok, out, err) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path));
    if !ok && err.contains("offline") {
        println!("this systemd-analyze has no `security --offline`: exposure not scored");
        return;
    }
    let score: f64 = out
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for st2bot-demo.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in\n{out}{err}"));
    assert!(
        score <= 2.0,
        "exposure {score} (systemd rates ≤ 2 as hardened)\n{out}"
    );
}

/// Tar entries of an uncompressed USTAR archive: name → (type flag, mode, contents).
fn read_ustar(tar: &[u8]) -> BTreeMap<String, (u8, u32, Vec<u8>)> {
    let octal = |field: &[u8]| -> u64 {
        let text = String::from_utf8_lossy(field);
        let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
        u64::from_str_radix(text, 8).unwrap_or_else(|_| panic!("bad octal field {text:?}"))
    };
    let cstr = |field: &[u8]| {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        String::from_utf8(field[..end].to_vec()).unwrap()
    };
    let mut entries = BTreeMap::new();
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        assert_eq!(&header[257..262], b"ustar", "USTAR headers only");
        let checksum = octal(&header[148..156]);
        let computed: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        assert_eq!(checksum, computed, "header checksum at {at}");
        let prefix = cstr(&header[345..500]);
        let name = cstr(&header[0..100]);
        let name = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size = octal(&header[124..136]) as usize;
        let mode = octal(&header[100..108]) as u32;
        assert_eq!(octal(&header[108..116]), 0, "{name} owned by root");
        let data = tar[at + 512..at + 512 + size].to_vec();
        assert!(
            entries
                .insert(name.clone(), (header[156], mode, data))
                .is_none(),
            "{name} twice"
        );
        at += 512 + size.div_ceil(512) * 512;
    }
    entries
}

/// `sha256:<hex>` of a file, by coreutils (independent of the tool that wrote it).
fn sha256(path: &Path) -> String {
    let (ok, out, err) = run(Command::new("sha256sum").arg(path));
    assert!(ok, "{err}");
    format!("sha256:{}", &out[..64])
}

fn blob(layout: &Path, descriptor: &serde_json::Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().unwrap();
    let path = layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    assert_eq!(sha256(&path), digest, "digest of {}", path.display());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes.len() as u64,
        descriptor["size"].as_u64().unwrap(),
        "size of {digest}"
    );
    bytes
}

#[test]
fn the_oci_layout_holds_exactly_the_bot_its_certificates_and_a_user() {
    assert!(
        have("python3"),
        "python3 is needed by packaging/oci/build-oci-layout"
    );
    let exe = env!("CARGO_BIN_EXE_demo");
    let dir = temp_dir("oci");
    let ca = dir.join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let layout = dir.join("image");
    let (ok, out, err) = run(
        Command::new(format!("{ROOT}/packaging/oci/build-oci-layout"))
            .args([
                "--exe",
                exe,
                "--name",
                "demo",
                "--tag",
                "t1",
                "--gzip-level",
                "1",
                // The test executable is the dynamically linked debug build: the layout is
                // inspected here, never run (the static one is tested below).
                "--allow-dynamic",
            ])
            .arg("--ca-bundle")
            .arg(&ca)
            .arg("--out")
            .arg(&layout)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    assert!(ok, "{out}{err}");

    let json = |bytes: &[u8]| -> serde_json::Value { serde_json::from_slice(bytes).unwrap() };
    assert_eq!(
        json(&std::fs::read(layout.join("oci-layout")).unwrap()),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        "t1"
    );
    assert_eq!(
        manifests[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest = json(&blob(&layout, &manifests[0]));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config = json(&blob(&layout, &manifest["config"]));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let compressed = blob(&layout, &layers[0]);

    // The blobs directory holds the three blobs and nothing else.
    let stored: BTreeSet<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let referenced: BTreeSet<String> = [&manifests[0], &manifest["config"], &layers[0]]
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, referenced);

    // Config: non-root, the bot as entrypoint, the uncompressed layer's digest as diff_id.
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/st2bot"])
    );
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    let gz = dir.join("layer.tar.gz");
    std::fs::write(&gz, &compressed).unwrap();
    let (ok, _, err) = run(Command::new("gzip").args(["-dk"]).arg(&gz));
    assert!(ok, "{err}");
    let tar_path = dir.join("layer.tar");
    assert_eq!(
        config["rootfs"],
        serde_json::json!({"type": "layers", "diff_ids": [sha256(&tar_path)]})
    );

    // The layer: exactly these entries; the executable is the one built.
    let entries = read_ustar(&std::fs::read(&tar_path).unwrap());
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "etc/",
            "etc/passwd",
            "etc/ssl/",
            "etc/ssl/certs/",
            "etc/ssl/certs/ca-certificates.crt",
            "usr/",
            "usr/local/",
            "usr/local/bin/",
            "usr/local/bin/st2bot",
        ]
    );
    let (kind, mode, data) = &entries["usr/local/bin/st2bot"];
    assert_eq!((*kind, *mode), (b'0', 0o755));
    assert!(
        *data == std::fs::read(exe).unwrap(),
        "the executable in the image differs from {exe}"
    );
    let (_, _, passwd) = &entries["etc/passwd"];
    let passwd = String::from_utf8(passwd.clone()).unwrap();
    assert_eq!(
        passwd,
        "st2bot:x:65532:65532:st2bot:/nonexistent:/sbin/nologin\n"
    );
    assert_eq!(
        entries["etc/ssl/certs/ca-certificates.crt"].2,
        std::fs::read(&ca).unwrap()
    );
    for dir in names.iter().filter(|n| n.ends_with('/')) {
        assert_eq!(entries[*dir].0, b'5', "{dir} is a directory");
        assert_eq!(entries[*dir].1, 0o755, "{dir}");
    }

    // Same inputs, same image.
    let again = dir.join("again");
    let (ok, _, err) = run(
        Command::new(format!("{ROOT}/packaging/oci/build-oci-layout"))
            .args([
                "--exe",
                exe,
                "--name",
                "demo",
                "--tag",
                "t1",
                "--gzip-level",
                "1",
                // The test executable is the dynamically linked debug build: the layout is
                // inspected here, never run (the static one is tested below).
                "--allow-dynamic",
            ])
            .arg("--ca-bundle")
            .arg(&ca)
            .arg("--out")
            .arg(&again)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(again.join("index.json")).unwrap(),
        std::fs::read(layout.join("index.json")).unwrap(),
        "reproducible"
    );
    // Refuses to overwrite, refuses a dynamically linked executable (the image has no C
    // library to run it with), and refuses what is not an executable.
    let (ok, _, err) = run(
        Command::new(format!("{ROOT}/packaging/oci/build-oci-layout"))
            .args(["--exe", exe, "--name", "demo", "--allow-dynamic"])
            .arg("--out")
            .arg(&layout),
    );
    assert!(!ok && err.contains("not empty"), "{err}");
    assert!(has_interpreter(&std::fs::read(exe).unwrap()));
    let (ok, _, err) = run(
        Command::new(format!("{ROOT}/packaging/oci/build-oci-layout"))
            .args(["--exe", exe, "--name", "demo"])
            .arg("--ca-bundle")
            .arg(&ca)
            .arg("--out")
            .arg(dir.join("dynamic")),
    );
    assert!(
        !ok && err.contains("is dynamically linked") && err.contains("scripts/build-static"),
        "{err}"
    );
    assert!(!dir.join("dynamic").exists(), "nothing written");
    let (ok, _, err) = run(
        Command::new(format!("{ROOT}/packaging/oci/build-oci-layout"))
            .arg("--exe")
            .arg(&ca)
            .args(["--name", "demo"])
            .arg("--out")
            .arg(dir.join("x")),
    );
    assert!(!ok && err.contains("not an ELF"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether an ELF file asks for a program interpreter (a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "64-bit");
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let p = phoff + i * phentsize;
        u32::from_le_bytes(elf[p..p + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// The executable inside an OCI image layout, after checking that index, manifest, config
/// and layer agree: every blob's digest and size, the config's `diff_id` against the
/// uncompressed layer, the entrypoint and the user. Returns the config and the executable.
fn executable_in_image(layout: &Path, scratch: &Path) -> (serde_json::Value, Vec<u8>) {
    let json = |bytes: &[u8]| -> serde_json::Value { serde_json::from_slice(bytes).unwrap() };
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    let manifest = json(&blob(layout, &manifests[0]));
    let config = json(&blob(layout, &manifest["config"]));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let gz = scratch.join("layer.tar.gz");
    std::fs::write(&gz, blob(layout, &layers[0])).unwrap();
    let (ok, _, err) = run(Command::new("gzip").args(["-dkf"]).arg(&gz));
    assert!(ok, "{err}");
    let tar = scratch.join("layer.tar");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([sha256(&tar)]),
        "config.rootfs.diff_ids names the layer"
    );
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/st2bot"])
    );
    assert_eq!(config["config"]["User"], "65532:65532", "non-root");
    let mut entries = read_ustar(&std::fs::read(&tar).unwrap());
    let (kind, mode, exe) = entries
        .remove("usr/local/bin/st2bot")
        .expect("the executable");
    assert_eq!((kind, mode), (b'0', 0o755));
    let (_, _, ca) = &entries["etc/ssl/certs/ca-certificates.crt"];
    assert!(
        String::from_utf8_lossy(ca).contains("-----BEGIN CERTIFICATE-----"),
        "CA certificates"
    );
    (config, exe)
}

/// Runs in CI as its own step (`.ci/run`: `cargo test --test packaging -- --ignored`): builds
/// the static demo in the `dist` profile with scripts/build-static (minutes when its target
/// directory is cold; `ST2BOT_STATIC_TARGET_DIR`, default `<target dir>/packaging`), checks it
/// is static, runs it with an empty environment against the built-in simulator, and packs it
/// with scripts/build-image, whose layout must hold that very executable.
#[tokio::test]
#[ignore = "builds the static dist executable (minutes); run by .ci/run with --ignored"]
async fn the_static_executable_is_static_and_runs_with_an_empty_environment() {
    let test_target_dir = Path::new(env!("CARGO_BIN_EXE_demo"))
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target dir>/<profile>/");
    let target_dir = std::env::var_os("ST2BOT_STATIC_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| test_target_dir.join("packaging"));
    let (ok, out, err) = run(Command::new(format!("{ROOT}/scripts/build-static"))
        .arg("demo")
        .env("CARGO_TARGET_DIR", &target_dir));
    assert!(ok, "scripts/build-static failed:\n{out}\n{err}");
    let report = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no executable reported:\n{out}"));
    println!("build-static: {report}");
    let exe = PathBuf::from(report.split('\t').next().unwrap());
    assert_eq!(exe, target_dir.join("static/demo"));
    let bytes = std::fs::read(&exe).unwrap();
    assert!(!has_interpreter(&bytes), "{} needs a loader", exe.display());
    assert!(
        bytes.len() <= 20 * 1024 * 1024,
        "{} bytes > 20 MiB",
        bytes.len()
    );
    assert!(
        have("file"),
        "`file` is needed (scripts/setup-test-deps installs it)"
    );
    let (_, kind, _) = run(Command::new("file").arg("-b").arg(&exe));
    assert!(
        kind.contains("statically linked") || kind.contains("static-pie linked"),
        "file: {kind}"
    );
    let (_, ldd_out, ldd_err) = run(Command::new("ldd").arg(&exe));
    let ldd = format!("{ldd_out}{ldd_err}");
    assert!(
        ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
        "ldd: {ldd}"
    );

    let (ok, version, err) = run(Command::new("env").arg("-i").arg(&exe).arg("--version"));
    assert!(ok && version.starts_with("demo (st2bot "), "{version}{err}");

    // Demo mode with an empty environment: commands on stdin, results awaited (`--linger`).
    let mut child = tokio::process::Command::new("env")
        .arg("-i")
        .arg(&exe)
        .args(["--simulate", "--linger", "5s"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"!help\n").await.unwrap();
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the demo exits after its input ends and the linger")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success()
            && stdout.contains("!local {{cmd}} - Run a command on the StackStorm host"),
        "env -i {} --simulate --linger 5s <<< '!help': {:?}\n{stdout}\n{stderr}",
        exe.display(),
        out.status
    );

    let sim = st2_sim::Sim::start(st2_sim::SimConfig::demo())
        .await
        .unwrap();
    for command in ["--check", "--doctor"] {
        let out = tokio::process::Command::new("env")
            .args(["-i", "ST2_API_KEY=sim-api-key"])
            .arg(&exe)
            .args([command, "--stackstorm-url", &sim.url()])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.ends_with("all checks passed\n"),
            "{command}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The image: scripts/build-image packs exactly this executable.
    let dir = temp_dir("static-image");
    let layout = dir.join("image");
    let (ok, out, err) = run(Command::new(format!("{ROOT}/scripts/build-image"))
        .arg("demo")
        .arg(&layout)
        .arg("ci")
        .env("ST2BOT_EXE", &exe)
        .env("CARGO_TARGET_DIR", &target_dir));
    assert!(ok, "scripts/build-image failed:\n{out}\n{err}");
    let (config, in_image) = executable_in_image(&layout, &dir);
    assert_eq!(config["os"], "linux");
    assert!(
        in_image == bytes,
        "the image's /usr/local/bin/st2bot is not {}",
        exe.display()
    );
    assert!(!has_interpreter(&in_image));
    let image_bytes: u64 = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "static executable: {} bytes; image blobs: {image_bytes} bytes",
        bytes.len()
    );

    // In an empty root (no loader, no libraries, no /etc at all), when the test may chroot.
    let (_, uid, _) = run(Command::new("id").arg("-u"));
    // `env_clear` leaves the child without PATH, and a relative program is looked up in the
    // child's PATH: name chroot by its full path.
    let chroot = Command::new("sh")
        .args(["-c", "command -v chroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if let (true, Some(chroot)) = (uid.trim() == "0", chroot) {
        // A root holding only what the image holds: the executable and the CA bundle (no
        // loader, no libraries, no passwd, no resolver configuration).
        let root = dir.join("chroot");
        std::fs::create_dir_all(root.join("etc/ssl/certs")).unwrap();
        std::fs::copy(&exe, root.join("bot")).unwrap();
        std::fs::copy(
            "/etc/ssl/certs/ca-certificates.crt",
            root.join("etc/ssl/certs/ca-certificates.crt"),
        )
        .expect("the host's CA bundle (Debian's ca-certificates)");
        let out = tokio::process::Command::new(&chroot)
            .arg(&root)
            .args(["/bot", "--check", "--stackstorm-url", &sim.url()])
            .env_clear()
            .env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
            .env("ST2_API_KEY", "sim-api-key")
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.ends_with("all checks passed\n"),
            "in a chroot holding only the image's files: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        println!("not root (or no chroot): the empty-chroot run was not done");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// No container engine runs in CI, so packaging/Dockerfile cannot be built there: this keeps
/// it consistent with what is tested — scripts/build-static's `dist` profile and musl target,
/// and build-oci-layout's image (executable path, CA bundle, user, environment).
#[test]
fn the_dockerfile_builds_what_build_image_writes() {
    let dockerfile = std::fs::read_to_string(format!("{ROOT}/packaging/Dockerfile")).unwrap();
    let layout_tool =
        std::fs::read_to_string(format!("{ROOT}/packaging/oci/build-oci-layout")).unwrap();
    let build_static = std::fs::read_to_string(format!("{ROOT}/scripts/build-static")).unwrap();
    for (what, needle) in [
        (
            "the dist profile, musl target, locked",
            "cargo build --locked --profile dist --target x86_64-unknown-linux-musl --bin \"${BOT}\"",
        ),
        ("musl-gcc for ring", "musl-tools"),
        (
            "the executable where the layout puts it",
            "/rootfs/usr/local/bin/st2bot",
        ),
        (
            "the CA bundle where the layout puts it",
            "/rootfs/etc/ssl/certs/ca-certificates.crt",
        ),
        (
            "the layout's passwd line",
            "st2bot:x:65532:65532:st2bot:/nonexistent:/sbin/nologin",
        ),
        ("an empty base", "FROM scratch"),
        ("the layout's user", "USER 65532:65532"),
        (
            "the layout's environment",
            "ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        ),
        (
            "the layout's entrypoint",
            "ENTRYPOINT [\"/usr/local/bin/st2bot\"]",
        ),
        ("the layout's stop signal", "STOPSIGNAL SIGTERM"),
    ] {
        assert!(
            dockerfile.contains(needle),
            "Dockerfile: {what}: `{needle}`"
        );
    }
    for needle in [
        "UID = 65532",
        "CA_PATH = \"etc/ssl/certs/ca-certificates.crt\"",
        "exe_path = \"usr/local/bin/st2bot\"",
        "\"PATH=/usr/local/bin\"",
        "f\"SSL_CERT_FILE=/{CA_PATH}\"",
        "\"StopSignal\": \"SIGTERM\"",
    ] {
        assert!(layout_tool.contains(needle), "build-oci-layout: `{needle}`");
    }
    assert!(
        build_static.contains("cargo build --locked --profile dist --target \"$target\""),
        "scripts/build-static builds the dist profile"
    );
    let rust_version = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION");
    let manifest = std::fs::read_to_string(format!("{ROOT}/Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("rust-version = \"{rust_version}\"")),
        "the Dockerfile's Rust {rust_version} is the workspace's rust-version"
    );
    let ignored =
        std::fs::read_to_string(format!("{ROOT}/packaging/Dockerfile.dockerignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l == "target/"),
        "target/ stays out of the context"
    );
}

/// Strings that only one part of the runtime (or a crate only it uses) puts in an
/// executable: each bot must carry the markers of what its definition uses and none of the
/// others' (the generated `main` names only those, and the linker drops the rest; this
/// holds in debug builds too, where `--gc-sections` also runs). Issue #14 item 2.
const MARKERS: &[(&str, &str)] = &[
    // bot-runtime/src/backend/text.rs: the start banner.
    ("text backend", "for commands, Ctrl-D to quit"),
    // bot-runtime/src/backend/slack.rs: the Socket Mode call.
    ("slack backend", "apps.connections.open"),
    // bot-runtime/src/backend/irc: the message command.
    ("irc backend", "PRIVMSG"),
    // tokio-xmpp: the stream's namespace.
    ("xmpp backend", "jabber:client"),
    // bot-runtime/src/backend/matrix: the event type of a message.
    ("matrix backend", "m.room.message"),
    // bot-runtime/src/backend/msteams: the token service.
    ("msteams backend", "login.microsoftonline.com"),
    // bot-runtime/src/simulator.rs: the demo-mode notice.
    ("simulator", "DEMO MODE: talking to a simulated StackStorm"),
    // bot-runtime/src/ha/audit_store.rs: our SQL.
    ("ha (PostgreSQL)", "INSERT INTO st2bot_audit"),
    // tokio-postgres: an error message of the client itself.
    (
        "tokio-postgres",
        "query returned an unexpected number of columns",
    ),
    // redb: an error message of the store itself.
    ("redb", "Database already open. Cannot acquire lock."),
    // bot-runtime/src/auth_page/html.rs: the login page's style sheet.
    (
        "login page",
        "font-family:system-ui,sans-serif;max-width:34rem",
    ),
];

/// Which [`MARKERS`] the executable carries.
fn parts_linked(exe: &str) -> BTreeSet<&'static str> {
    let bytes = std::fs::read(exe).unwrap_or_else(|e| panic!("cannot read {exe}: {e}"));
    // The search of the standard library (optimised even in a debug test build); the
    // markers are ASCII, which the lossy conversion keeps as it is.
    let text = String::from_utf8_lossy(&bytes);
    MARKERS
        .iter()
        .filter(|(_, marker)| text.contains(marker))
        .map(|(part, _)| *part)
        .collect()
}

#[test]
fn each_executable_links_only_what_its_definition_uses() {
    let expected: &[(&str, &str, &[&str])] = &[
        // A terminal bot in demo mode (`simulator: true`): its backend and the simulator
        // for `--simulate`, nothing else.
        (
            "demo",
            env!("CARGO_BIN_EXE_demo"),
            &["text backend", "simulator"],
        ),
        // A terminal bot without demo mode: its backend alone.
        (
            "terminal",
            env!("CARGO_BIN_EXE_terminal"),
            &["text backend"],
        ),
        (
            "demo-ha",
            env!("CARGO_BIN_EXE_demo-ha"),
            &[
                "text backend",
                "simulator",
                "ha (PostgreSQL)",
                "tokio-postgres",
                // Its `auth_page` keeps the sessions in PostgreSQL; the session subsystem
                // carries the file store all the same.
                "redb",
                "login page",
            ],
        ),
        // auth_page: the session file and the login page.
        (
            "demo-sessions",
            env!("CARGO_BIN_EXE_demo-sessions"),
            &["text backend", "simulator", "redb", "login page"],
        ),
        // `stackstorm.results_store`: the owed-results file.
        (
            "demo-results",
            env!("CARGO_BIN_EXE_demo-results"),
            &["text backend", "simulator", "redb"],
        ),
        // bots/slack.yaml has an `auth_page`.
        (
            "slack",
            env!("CARGO_BIN_EXE_slack"),
            &["slack backend", "redb", "login page"],
        ),
        ("irc", env!("CARGO_BIN_EXE_irc"), &["irc backend"]),
        ("xmpp", env!("CARGO_BIN_EXE_xmpp"), &["xmpp backend"]),
        ("matrix", env!("CARGO_BIN_EXE_matrix"), &["matrix backend"]),
        (
            "msteams",
            env!("CARGO_BIN_EXE_msteams"),
            &["msteams backend"],
        ),
    ];
    let mut wrong = Vec::new();
    for (bot, exe, parts) in expected {
        let linked = parts_linked(exe);
        let parts: BTreeSet<&str> = parts.iter().copied().collect();
        if linked != parts {
            wrong.push(format!(
                "{bot}: carries {linked:?}, its definition uses {parts:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
