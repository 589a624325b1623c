//! Real IRC servers for the tests: ngircd (plain and TLS ports, no services) and InspIRCd
//! linked to Atheme services (NickServ accounts, SASL PLAIN). Configurations are the ones
//! proven in CRATES-AND-SERVERS.md §3, written into a throwaway directory with free ports.

use std::process::Command;
use std::time::Duration;

use crate::{Cert, ServerProcess, TempDir, free_port, self_signed_cert, tail, wait_for_port};

/// An ngircd server; [`Ngircd::restart`] brings it back on the same ports.
#[derive(Debug)]
pub struct Ngircd {
    /// Its directory (config, certificate, log).
    pub dir: TempDir,
    /// Plain-text client port.
    pub plain_port: u16,
    /// TLS client port.
    pub tls_port: u16,
    /// Its self-signed certificate (for `127.0.0.1` and `localhost`).
    pub cert: Cert,
    process: ServerProcess,
}

impl Ngircd {
    /// Starts a server with channel `#ops`, waiting until both ports accept connections.
    pub fn start() -> Self {
        let dir = TempDir::new("ngircd");
        let cert = self_signed_cert(dir.path(), "irc", &["localhost", "127.0.0.1"]);
        let plain_port = free_port();
        let tls_port = free_port();
        let config = format!(
            "[Global]\n\
             Name = irc.localhost\n\
             Info = st2bot test server\n\
             AdminInfo1 = st2bot tests\n\
             AdminInfo2 = localhost\n\
             AdminEMail = root@localhost\n\
             Listen = 127.0.0.1\n\
             Ports = {plain_port}\n\
             ServerUID = root\n\
             ServerGID = root\n\
             [Limits]\n\
             MaxConnectionsIP = 0\n\
             [Options]\n\
             PAM = no\n\
             Ident = no\n\
             DNS = no\n\
             [SSL]\n\
             CertFile = {cert}\n\
             KeyFile = {key}\n\
             Ports = {tls_port}\n\
             [Channel]\n\
             Name = #ops\n\
             Modes = tn\n",
            cert = cert.cert.display(),
            key = cert.key.display(),
        );
        std::fs::write(dir.join("ngircd.conf"), config).expect("write ngircd.conf");
        let process = Self::spawn(&dir);
        let server = Self {
            dir,
            plain_port,
            tls_port,
            cert,
            process,
        };
        server.wait_ready();
        server
    }

    fn spawn(dir: &TempDir) -> ServerProcess {
        let mut command = Command::new("ngircd");
        command
            .arg("--nodaemon")
            .arg("--config")
            .arg(dir.join("ngircd.conf"));
        ServerProcess::spawn("ngircd", command, &dir.join("ngircd.log"))
    }

    fn wait_ready(&self) {
        wait_for_port(self.plain_port, Duration::from_secs(30));
        wait_for_port(self.tls_port, Duration::from_secs(30));
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again with the same configuration and ports.
    pub fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(&self.dir);
        self.wait_ready();
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        tail(&self.dir.join("ngircd.log"), 40)
    }
}

/// InspIRCd 3 linked to Atheme services on 127.0.0.1 (plain-text client port; put a
/// [`crate::TlsFront`] before it for TLS: Debian's InspIRCd with its GnuTLS module loaded
/// never completes the link with Atheme).
#[derive(Debug)]
pub struct InspircdAtheme {
    /// Its directory.
    pub dir: TempDir,
    /// Plain-text client port.
    pub port: u16,
    // Field order matters: services stop before the IRC server.
    _atheme: ServerProcess,
    _inspircd: ServerProcess,
}

impl InspircdAtheme {
    /// Starts InspIRCd and Atheme and waits until NickServ is on the network.
    pub fn start() -> Self {
        let dir = TempDir::new("inspircd");
        let port = free_port();
        let link_port = free_port();
        let d = dir.path().display();
        let config = format!(
            r#"<server name="irc.localhost" description="st2bot test" network="TestNet">
<admin name="test" nick="test" email="test@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<bind address="127.0.0.1" port="{link_port}" type="servers">
<connect allow="*" timeout="60" localmax="1000" globalmax="1000" limit="1000" threshold="1000" commandrate="100000" fakelag="off">
<pid file="{d}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{d}/inspircd.log">
<module name="spanningtree"> <module name="services_account"> <module name="sasl"> <module name="cap">
<link name="services.localhost" ipaddr="127.0.0.1" port="{link_port}" allowmask="127.0.0.0/8" sendpass="linkpass" recvpass="linkpass">
<uline server="services.localhost" silent="yes">
<sasl target="services.localhost">
"#
        );
        std::fs::write(dir.join("inspircd.conf"), config).expect("write inspircd.conf");
        let mut command = Command::new("inspircd");
        command
            .arg("--config")
            .arg(dir.join("inspircd.conf"))
            .args(["--runasroot", "--nofork"]);
        let inspircd = ServerProcess::spawn("inspircd", command, &dir.join("inspircd.out"));
        wait_for_port(port, Duration::from_secs(30));
        wait_for_port(link_port, Duration::from_secs(30));

        let atheme_dir = dir.join("atheme");
        std::fs::create_dir_all(&atheme_dir).expect("create atheme dir");
        let example =
            std::fs::read_to_string("/usr/share/doc/atheme-services/examples/atheme.conf.example")
                .expect("atheme example config (installed by scripts/setup-test-deps)");
        std::fs::write(
            atheme_dir.join("atheme.conf"),
            atheme_config(&example, link_port),
        )
        .expect("write atheme.conf");
        // Atheme refuses to run as root: hand its directory to the `irc` user.
        let status = Command::new("chown")
            .args(["-R", "irc"])
            .arg(&atheme_dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown atheme dir");
        let a = atheme_dir.display();
        let mut command = Command::new("su");
        command.args([
            "-s",
            "/bin/sh",
            "irc",
            "-c",
            &format!(
                "exec atheme-services -n -c {a}/atheme.conf -D {a} -l {a}/atheme.log -p {a}/atheme.pid"
            ),
        ]);
        let atheme = ServerProcess::spawn("atheme", command, &dir.join("atheme.out"));
        let server = Self {
            dir,
            port,
            _atheme: atheme,
            _inspircd: inspircd,
        };
        server.wait_for_services();
        server
    }

    /// Waits until the services server has linked (its burst is in InspIRCd's log).
    fn wait_for_services(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let log = std::fs::read_to_string(self.dir.join("inspircd.log")).unwrap_or_default();
            if log.contains("services.localhost") && log.to_lowercase().contains("burst") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Atheme did not link to InspIRCd:\n{}\n--- atheme ---\n{}",
            tail(&self.dir.join("inspircd.log"), 30),
            tail(&self.dir.join("atheme/atheme.log"), 30)
        );
    }

    /// The end of both logs.
    pub fn log_tail(&self) -> String {
        format!(
            "{}\n--- atheme ---\n{}",
            tail(&self.dir.join("inspircd.log"), 30),
            tail(&self.dir.join("atheme/atheme.log"), 30)
        )
    }
}

/// The Debian example Atheme configuration with the changes CRATES-AND-SERVERS.md lists:
/// InspIRCd protocol, no HTTP/XML-RPC, our names, one uplink to our link port.
fn atheme_config(example: &str, link_port: u16) -> String {
    let mut out = String::new();
    // Brace depth of an `uplink` block being left out.
    let mut skipped_depth = 0i64;
    let mut uplink_written = false;
    let depth_change =
        |line: &str| line.matches('{').count() as i64 - line.matches('}').count() as i64;
    for line in example.lines() {
        let trimmed = line.trim_start();
        if skipped_depth > 0 {
            skipped_depth += depth_change(line);
            continue;
        }
        if trimmed.starts_with("uplink \"") {
            skipped_depth = depth_change(line);
            if !uplink_written {
                out.push_str(&format!(
                    "uplink \"irc.localhost\" {{\n\thost = \"127.0.0.1\";\n\tsend_password = \"linkpass\";\n\treceive_password = \"linkpass\";\n\tport = {link_port};\n}};\n"
                ));
                uplink_written = true;
            }
            continue;
        }
        let replaced = if trimmed.starts_with("#loadmodule \"modules/protocol/charybdis\"") {
            "loadmodule \"modules/protocol/inspircd\";".to_owned()
        } else if trimmed.starts_with("loadmodule \"modules/misc/httpd\"")
            || trimmed.starts_with("loadmodule \"modules/transport/xmlrpc\"")
        {
            format!("#{line}")
        } else if trimmed.starts_with("name = \"services.int\"") {
            "\tname = \"services.localhost\";".to_owned()
        } else if trimmed.contains("misconfigured") {
            line.replace("misconfigured", "testnet")
        } else {
            line.to_owned()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    out
}
