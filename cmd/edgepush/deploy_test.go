package main

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The deploy/ files are checked here as far as this machine can: no
// Docker engine runs here (the image is not built), and systemd is not
// PID 1 (the unit is verified with systemd-analyze, not started).

// unitFile reads a systemd unit: key → values, in order (a key may
// repeat), sections merged; and its comment lines.
func unitFile(t *testing.T, path string) (map[string][]string, []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	var comments []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "#"):
			comments = append(comments, l)
		case l == "" || strings.HasPrefix(l, "["):
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", path, l)
			}
			keys[k] = append(keys[k], v)
		}
	}
	return keys, comments
}

func one(t *testing.T, keys map[string][]string, k string) string {
	t.Helper()
	if len(keys[k]) != 1 {
		t.Fatalf("%s= given %d times, want once", k, len(keys[k]))
	}
	return keys[k][0]
}

// The unit runs as a dynamic user that can read its config (installed
// 0640 with the group the service gets) and write its access log under
// ProtectSystem=strict, and does not restart on a configuration error.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	const path = "../../deploy/edgepush.service"
	keys, comments := unitFile(t, path)
	if one(t, keys, "DynamicUser") != "yes" || one(t, keys, "ProtectSystem") != "strict" {
		t.Fatal("the unit is meant to run as a dynamic user under ProtectSystem=strict")
	}
	group := one(t, keys, "SupplementaryGroups")
	confDir := "/etc/" + one(t, keys, "ConfigurationDirectory")
	execStart := strings.Fields(one(t, keys, "ExecStart"))
	i := slices.Index(execStart, "-config")
	if i < 0 || i+1 >= len(execStart) || filepath.Dir(execStart[i+1]) != confDir {
		t.Fatalf("ExecStart %q: want -config in %s", execStart, confDir)
	}
	confFile := execStart[i+1]
	// The install instructions create the group and give it the config,
	// not readable by others, in the directory the unit names.
	install := strings.Join(comments, "\n")
	for _, want := range []string{
		"groupadd --system " + group,
		"install -m640 -g " + group + " deploy/tier/edge-1.conf " + confFile,
		"install -d -m750 -g " + group + " " + confDir + "/tls",
		"edgepush -check-config -config " + confFile,
	} {
		if !strings.Contains(install, want) {
			t.Errorf("the unit's install steps lack %q", want)
		}
	}
	if strings.Contains(install, "-m600") {
		t.Error("a file installed 0600 root-owned: the dynamic user cannot read it")
	}
	// The access log's directory is the service's own.
	logs := one(t, keys, "LogsDirectory")
	if !strings.Contains(install, "access-log = /var/log/"+logs+"/") {
		t.Errorf("the unit does not say where -access-log goes (LogsDirectory=%s)", logs)
	}
	if got := one(t, keys, "RestartPreventExitStatus"); got != strconv.Itoa(exitUsage) {
		t.Errorf("RestartPreventExitStatus=%s, want %d (configuration errors)", got, exitUsage)
	}
	if one(t, keys, "ExecReload") != "/bin/kill -HUP $MAINPID" || one(t, keys, "KillSignal") != "SIGTERM" {
		t.Error("reload must send SIGHUP (TLS reload), stop SIGTERM (drain)")
	}

	// systemd's own check, with ExecStart pointing at a real binary.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the unit is not verified by systemd")
		return
	}
	dir := t.TempDir()
	unit, _ := os.ReadFile(path)
	unit = bytes.ReplaceAll(unit, []byte(execStart[0]), []byte(edgepushBinary(t)))
	if err := os.WriteFile(filepath.Join(dir, "edgepush.service"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "edgepush.service")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// dockerfile reads the directives of a Dockerfile of the final stage:
// instruction → its arguments, ENV as name → value.
func dockerfile(t *testing.T, path string) (map[string]string, map[string]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	dirs, env := map[string]string{}, map[string]string{}
	for l := range strings.SplitSeq(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		ins, args, _ := strings.Cut(l, " ")
		args = strings.TrimSpace(args)
		if ins == "FROM" {
			clear(dirs)
			clear(env)
		}
		if ins == "ENV" {
			for _, kv := range strings.Fields(args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			continue
		}
		dirs[ins] = args
	}
	return dirs, env
}

// jsonArgs reads a Dockerfile exec-form argument list, ["a", "b"].
func jsonArgs(t *testing.T, s string) []string {
	t.Helper()
	m := regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(s, -1)
	var out []string
	for _, a := range m {
		out = append(out, a[1])
	}
	if !strings.HasPrefix(s, "[") || len(out) == 0 {
		t.Fatalf("%q is not an exec-form list", s)
	}
	return out
}

// The image's settings expose what the node listens on by default (the
// client and metrics listeners, not the control API), and its default
// command works: the image's environment and command, run here with the
// listeners moved to loopback ports of the test's (flags win over the
// environment), serve the demo, and /healthz, /readyz and /metrics on the
// metrics listener, which serves nothing else.
func TestDockerImageDefaults(t *testing.T) {
	t.Parallel()
	dirs, env := dockerfile(t, "../../deploy/Dockerfile")
	var exposed []string
	for _, p := range strings.Fields(dirs["EXPOSE"]) {
		exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
	}
	var listening []string
	for _, v := range []string{"EDGEPUSH_LISTEN", "EDGEPUSH_METRICS_LISTEN", "EDGEPUSH_TLS_LISTEN"} {
		if a, ok := env[v]; ok {
			host, port, err := net.SplitHostPort(a)
			if err != nil || host != "" {
				t.Errorf("%s=%s: want :PORT, every interface of the container", v, a)
			}
			listening = append(listening, port)
		}
	}
	slices.Sort(exposed)
	slices.Sort(listening)
	if !slices.Equal(exposed, listening) {
		t.Errorf("EXPOSE %v, but the image listens on %v", exposed, listening)
	}
	if c := env["EDGEPUSH_CONTROL"]; !loopbackAddr(c) {
		t.Errorf("EDGEPUSH_CONTROL=%s: the control API (publish, purge) must stay on the container's loopback by default", c)
	}
	entry, cmd := jsonArgs(t, dirs["ENTRYPOINT"]), jsonArgs(t, dirs["CMD"])
	if len(entry) != 1 || entry[0] != "/edgepush" || dirs["USER"] == "" || dirs["STOPSIGNAL"] != "SIGTERM" {
		t.Fatalf("ENTRYPOINT %v USER %q STOPSIGNAL %q", entry, dirs["USER"], dirs["STOPSIGNAL"])
	}
	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "bin", "**/node_modules"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}

	var imageEnv []string
	for k, v := range env {
		imageEnv = append(imageEnv, k+"="+v)
	}
	args := append(slices.Clone(cmd), "-metrics-listen", "127.0.0.1:0")
	p := startProcEnv(t, edgepushBinary(t), imageEnv, args...)
	if p.metrics == "" {
		t.Fatal("no metrics listener")
	}
	if code := httpStatus(p.listen, "/"); code != 200 {
		t.Fatalf("the demo page: %d", code)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code := httpStatus(p.metrics, path); code != 200 {
			t.Errorf("GET %s on the metrics listener: %d", path, code)
		}
	}
	resp, err := http.Post("http://"+p.metrics+"/publish/", "application/json", strings.NewReader(`{"items":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /publish/ on the metrics listener: %d", resp.StatusCode)
	}
}

// loopbackAddr reports whether host:port names a loopback address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
