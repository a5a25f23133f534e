package embedserve_test

// Integration tests run against a live server: EMBEDSERVE_TEST_TARGET
// ("host:port"), or else one started here from the repository's virtualenv
// (EMBEDSERVE_BIN overrides ../../.venv/bin/embedserve, relative to clients/go)
// and stopped when the tests end.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/embedserve/embedserve/clients/go/embedserve"
)

// target is the address of the server under test.
var target string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	target = os.Getenv("EMBEDSERVE_TEST_TARGET")
	if target == "" {
		stop, addr, err := startServer()
		if err != nil {
			fmt.Fprintln(os.Stderr, "embedserve tests:", err)
			return 1
		}
		defer stop()
		target = addr
	}
	return m.Run()
}

// repoRoot is the repository holding this module (clients/go/../..).
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Clean(filepath.Join(dir, "..", ".."))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("go.mod not found above " + dir)
		}
		dir = parent
	}
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer runs `embedserve serve --model minilm` on a free port and waits
// until its health is SERVING.
func startServer() (stop func(), addr string, err error) {
	bin := envOr("EMBEDSERVE_BIN", filepath.Join(repoRoot(), ".venv", "bin", "embedserve"))
	if _, err := os.Stat(bin); err != nil {
		return nil, "", fmt.Errorf("no server to test against: set EMBEDSERVE_TEST_TARGET, or EMBEDSERVE_BIN, or create %s (./dev test): %w", bin, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	dataDir, err := os.MkdirTemp("", "embedserve-go-test-")
	if err != nil {
		return nil, "", err
	}
	logFile, err := os.Create(filepath.Join(dataDir, "server.log"))
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "serve", "--model", "minilm", "--host", "127.0.0.1",
		"--port", fmt.Sprint(port), "--data-dir", dataDir, "--grace-period-s", "2")
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		os.RemoveAll(dataDir)
	}
	fail := func(err error) (func(), string, error) {
		stop()
		return nil, "", err
	}

	client, err := embedserve.Dial(addr)
	if err != nil {
		return fail(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- client.WaitUntilServing(ctx) }()
	select {
	case err := <-ready:
		if err != nil {
			log, _ := os.ReadFile(logFile.Name())
			return fail(fmt.Errorf("%w\nserver log:\n%s", err, log))
		}
	case err := <-exited:
		exited <- err // for stop
		log, _ := os.ReadFile(logFile.Name())
		return fail(fmt.Errorf("server exited before serving (%v); log:\n%s", err, log))
	}
	return stop, addr, nil
}

// dial connects to the server under test; the client is closed with the test.
func dial(t *testing.T, opts ...embedserve.Option) *embedserve.Client {
	t.Helper()
	client, err := embedserve.Dial(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}
