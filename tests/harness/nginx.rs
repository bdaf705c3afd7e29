//! A real nginx process in a temporary prefix.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{flavour, free_port, memcheck, repo_root, scaled, wait_for, wait_for_quiet};

/// The nginx module files, in load order.
pub const MODULE_FILES: [&str; 3] =
    ["ngx_ase_common_module.so", "ngx_http_ase_request_module.so", "ngx_http_ase_response_module.so"];

/// The nginx binary and modules directory of the flavour under test.
pub fn binary_and_modules() -> (PathBuf, PathBuf) {
    let dir = repo_root().join("build").join(flavour());
    let bin = dir.join("sbin/nginx");
    assert!(bin.exists(), "{} not found: run scripts/build.sh first", bin.display());
    (bin, dir.join("modules"))
}

/// Whether the flavour under test has the modules compiled in (`scripts/build.sh
/// --static`): then nginx must not be given `load_module` for them.
pub fn modules_compiled_in() -> bool {
    flavour() == "static"
}

/// The three `load_module` lines for the flavour under test (none for a static build).
pub fn load_modules() -> String {
    if modules_compiled_in() {
        return String::new();
    }
    let (_, modules) = binary_and_modules();
    MODULE_FILES.iter().map(|m| format!("load_module {};\n", modules.join(m).display())).collect()
}

/// A configuration with the modules loaded, logging to `logs/`, and `http_block` inside
/// `http { }`.
pub fn config_with_http(http_block: &str) -> String {
    let user = if is_root() { "user root;\n" } else { "" };
    format!(
        "{modules}{user}worker_processes 1;\nerror_log logs/error.log debug;\npid logs/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n    access_log logs/access.log;\n{http_block}\n}}\n",
        modules = load_modules()
    )
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Runs `nginx -t` on an http block; returns (success, stderr, the config's path).
pub fn nginx_t(http: &str) -> (bool, String, String) {
    let n = Nginx::prepare(&config_with_http(http));
    let out = n.test_config();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        n.path("conf/nginx.conf").display().to_string(),
    )
}

pub struct Nginx {
    pub prefix: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Nginx {
    /// A prefix directory with `conf/nginx.conf` = `config`, not started.
    pub fn prepare(config: &str) -> Nginx {
        let prefix = tempfile::Builder::new().prefix("ngx-ase-test-").tempdir().expect("tempdir");
        fs::create_dir_all(prefix.path().join("logs")).expect("logs dir");
        fs::create_dir_all(prefix.path().join("conf")).expect("conf dir");
        fs::write(prefix.path().join("conf/nginx.conf"), config).expect("write nginx.conf");
        Nginx { prefix, port: 0, child: None }
    }

    /// Writes a file under the prefix (for token files, certificates, included configs).
    pub fn write_file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.prefix.path().join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, content).expect("write file");
        p
    }

    /// Runs `nginx -t` on the prepared configuration.
    pub fn test_config(&self) -> Output {
        self.command().arg("-t").output().expect("run nginx -t")
    }

    /// nginx's command line for this prefix, run by `NGX_ASE_WRAPPER` when that is set.
    fn command(&self) -> Command {
        self.command_wrapped(&[])
    }

    /// nginx's command line run by `outer` (program and arguments), then by
    /// `NGX_ASE_WRAPPER`, nginx's own arguments last.
    fn command_wrapped(&self, outer: &[&str]) -> Command {
        let (bin, _) = binary_and_modules();
        let mut line: Vec<std::ffi::OsString> = outer.iter().map(|s| s.into()).collect();
        line.extend(self.env_wrapper().into_iter().map(Into::into));
        line.push(bin.into());
        let mut cmd = Command::new(&line[0]);
        cmd.args(&line[1..]).arg("-p").arg(self.prefix.path()).arg("-c").arg("conf/nginx.conf");
        cmd
    }

    /// `NGX_ASE_WRAPPER` split at white space (no quoting); for valgrind, with memcheck's log
    /// put in this prefix's `logs/memcheck.PID.log` unless the wrapper names a log itself.
    fn env_wrapper(&self) -> Vec<String> {
        let mut words: Vec<String> = wrapper().split_whitespace().map(String::from).collect();
        if is_valgrind(&words) && !words.iter().any(|w| w.starts_with("--log-file") || w.starts_with("--log-fd")) {
            words.insert(1, format!("--log-file={}", self.path("logs/memcheck.%p.log").display()));
        }
        words
    }

    /// Starts nginx with `http_block`, which may use `{port}` for the port picked for it.
    pub fn start(http_block: &str) -> Nginx {
        let port = free_port();
        let mut n = Nginx::prepare(&config_with_http(&http_block.replace("{port}", &port.to_string())));
        n.port = port;
        n.launch();
        n
    }

    /// Starts the prepared configuration in the foreground (`daemon off`) and waits until
    /// `self.port` accepts connections.
    pub fn launch(&mut self) {
        self.launch_wrapped(&[]);
    }

    /// Like `launch`, with nginx's command line run by `wrapper` (program and arguments,
    /// nginx's own command line appended), e.g. in a private mount namespace; the wrapper
    /// must end by exec'ing nginx, so that the process started is nginx's master.
    /// `NGX_ASE_WRAPPER` comes between the two.
    pub fn launch_wrapped(&mut self, wrapper: &[&str]) {
        let mut cmd = self.command_wrapped(wrapper);
        let child = cmd
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(fs::File::create(self.path("logs/stderr.log")).expect("stderr log")))
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        let port = self.port;
        wait_for("nginx to listen", Duration::from_secs(10), || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("nginx exited at start ({status}):\n{}", self.error_log());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.prefix.path().join(rel)
    }

    /// The error log, plus what nginx wrote to stderr (a build whose default error log is
    /// stderr, like Debian's, writes start-up messages there).
    pub fn error_log(&self) -> String {
        let mut s = fs::read_to_string(self.path("logs/stderr.log")).unwrap_or_default();
        s.push_str(&fs::read_to_string(self.path("logs/error.log")).unwrap_or_default());
        s
    }

    /// The lines of a log under the prefix once it has at least `n` of them: nginx writes
    /// the access log just after the response, so a client can be a moment ahead of it.
    pub fn log_lines(&self, rel: &str, n: usize) -> Vec<String> {
        let path = self.path(rel);
        let read =
            || -> Vec<String> { fs::read_to_string(&path).unwrap_or_default().lines().map(String::from).collect() };
        let _ = crate::wait_for_quiet(Duration::from_secs(5), || read().len() >= n);
        read()
    }

    pub fn access_log(&self) -> String {
        fs::read_to_string(self.path("logs/access.log")).unwrap_or_default()
    }

    /// Sends a signal to the master (`reload`, `quit`, ...).
    pub fn signal(&self, sig: &str) {
        let status = self.command().args(["-s", sig]).status().expect("nginx -s");
        assert!(status.success(), "nginx -s {sig} failed");
    }

    /// Error-log lines that say a worker crashed.
    pub fn crashed_workers(&self) -> Vec<String> {
        self.error_log()
            .lines()
            .filter(|l| l.contains("exited on signal") || l.contains("panic"))
            .map(String::from)
            .collect()
    }
}

impl Nginx {
    /// Stops the master started by `launch`. Unwrapped: SIGTERM (fast shutdown). Under a
    /// wrapper: SIGQUIT (graceful, as `nginx -s quit`), then SIGTERM, each with a long
    /// bound, so that valgrind sees every process end and writes its summary.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = child.id().to_string();
        let mut exited = |limit: Duration| wait_for_quiet(limit, || matches!(child.try_wait(), Ok(Some(_))));
        let signal = |sig: &str| {
            let _ = Command::new("kill").arg(sig).arg(&pid).status();
        };
        if wrapper().trim().is_empty() {
            signal("-TERM");
            exited(Duration::from_secs(2));
        } else {
            // wait_for_quiet stretches the 6 s by the time scale.
            signal("-QUIT");
            if !exited(Duration::from_secs(6)) {
                eprintln!(
                    "nginx under {} did not quit within {:?}; terminating it",
                    wrapper(),
                    scaled(Duration::from_secs(6))
                );
                signal("-TERM");
                exited(Duration::from_secs(6));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Under valgrind: the findings in this nginx's memcheck logs, which are also copied
    /// to `target/valgrind/<prefix name>/` (the prefix is deleted with the test).
    fn memcheck_findings(&self) -> Option<String> {
        let logs = memcheck::logs_in(&self.path("logs"));
        let found = memcheck::report(&logs)?;
        let keep = repo_root().join("target/valgrind").join(self.prefix.path().file_name().unwrap_or_default());
        let _ = fs::create_dir_all(&keep);
        for log in logs.iter().map(PathBuf::as_path).chain([self.path("logs/error.log").as_path()]) {
            if let Some(name) = log.file_name() {
                let _ = fs::copy(log, keep.join(name));
            }
        }
        Some(format!("{found}(logs kept in {})", keep.display()))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let memcheck = if is_valgrind(&[wrapper()]) { self.memcheck_findings() } else { None };
        if std::thread::panicking() {
            eprintln!(
                "--- nginx error log ({}) ---\n{}",
                self.prefix.path().display(),
                tail(
                    &self.error_log(),
                    std::env::var("NGX_ASE_LOG_TAIL").ok().and_then(|v| v.parse().ok()).unwrap_or(60)
                )
            );
            if let Some(found) = memcheck {
                eprintln!("--- memcheck ---\n{found}");
            }
        } else if let Some(found) = memcheck {
            panic!("memcheck found errors in nginx:\n{found}");
        }
    }
}

/// `NGX_ASE_WRAPPER`: a program (and its arguments) to run every nginx under; empty = none.
pub fn wrapper() -> String {
    std::env::var("NGX_ASE_WRAPPER").unwrap_or_default()
}

/// Whether a wrapper's program is valgrind.
fn is_valgrind(words: &[String]) -> bool {
    words.first().and_then(|w| w.split_whitespace().next()).is_some_and(|p| p.rsplit('/').next() == Some("valgrind"))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether a path exists (for skip messages).
pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Runs `nginx -t` on `http` (an http block) and asserts it refused, with `needle` in its
/// message and naming the file and line of the first line that contains `line_with`.
pub fn expect_refused(http: &str, needle: &str, line_with: &str) {
    let config = config_with_http(http);
    let n = Nginx::prepare(&config);
    let out = n.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nginx -t accepted:\n{config}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    let line = config.lines().position(|l| l.contains(line_with)).expect("the line") + 1;
    let place = format!("{}:{line}", n.path("conf/nginx.conf").display());
    assert!(err.contains(&place), "expected the place {place} in:\n{err}");
}
