package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashHelperEnv = "PGCLUSTER_CRASH_HELPER"

// TestCrashHelper is not a test: TestServerDiesWithCaller runs the test
// binary with crashHelperEnv set, and then this starts a cluster, reports
// the postmaster's pid and blocks until it is killed.
func TestCrashHelper(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "1" {
		t.Skip("helper process for TestServerDiesWithCaller")
	}
	c, err := Start(context.Background())
	if err != nil {
		fmt.Printf("PGCLUSTER error %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("PGCLUSTER %d %s\n", c.srv.cmd.Process.Pid, c.Dir())
	// Block until killed; stdin is a pipe the parent never writes to.
	_, _ = bufio.NewReader(os.Stdin).ReadByte()
	_ = c.Close()
	os.Exit(0)
}

// TestServerDiesWithCaller kills a process that started a cluster without
// letting it clean up, as a crashed `go test` would be, and checks that the
// server goes away with it.
func TestServerDiesWithCaller(t *testing.T) {
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	var dir string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "PGCLUSTER "); ok {
			if _, err := fmt.Sscanf(line, "%d %s", &pid, &dir); err != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("helper: %s", line)
			}
			break
		}
	}
	if pid == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("helper did not report a postmaster")
	}
	// The helper cannot remove its directory; this test does.
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if !alive(pid) {
		t.Fatal("postmaster not running before the helper was killed")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// Poll: the postmaster is not our child, so there is nothing to wait on.
	delay := pollMin
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for alive(pid) {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postmaster %d outlived the process that started it", pid)
		case <-timer.C:
		}
		delay = min(2*delay, pollMax)
		timer.Reset(delay)
	}
}

// alive reports whether pid is a process that has not exited. A zombie (an
// exited process nobody has reaped, which happens in containers whose init
// does not reap orphans) counts as exited.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
