package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// child is a running pgseal process.
type child struct {
	cmd     *exec.Cmd
	addr    string        // where it listens, from its ready log line
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // set before exited is closed
}

// startChild runs bin with args and waits until its log says it is ready.
// Its standard error is copied to logw for as long as it runs.
func startChild(ctx context.Context, bin string, args []string, logw io.Writer) (*child, error) {
	// Not CommandContext: the process must outlive ctx, which bounds the
	// start only.
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("failed to start pgseal: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start pgseal: %w", err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan error, 1)
	// The child owns this goroutine: it copies the log until the process
	// closes its standard error, which it does when it exits, then reaps it.
	go func() {
		addr, rest, err := scanReady(stderr, logw)
		if err == nil {
			c.addr = addr
		}
		ready <- err
		if rest != nil {
			for rest.Scan() {
				fmt.Fprintf(logw, "%s\n", rest.Bytes())
			}
		}
		io.Copy(logw, stderr) // whatever a too-long line left behind
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	select {
	case err := <-ready:
		if err != nil {
			<-c.exited
			return nil, fmt.Errorf("%w (%v)", err, c.waitErr)
		}
		return c, nil
	case <-ctx.Done():
		c.stop(5 * time.Second)
		return nil, fmt.Errorf("failed to start pgseal: %w", ctx.Err())
	}
}

// readyAddr recognises pgseal serve's ready line and returns its address.
func readyAddr(line []byte) (string, bool) {
	var rec struct {
		Message string `json:"message"`
		Listen  string `json:"listen"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.Message != "pgseal is ready" || rec.Listen == "" {
		return "", false
	}
	return rec.Listen, true
}

// stop asks pgseal to shut down (SIGTERM) and kills it if it has not
// exited within grace. It returns the process's exit error, if any.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return c.waitErr
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.exited:
		return c.waitErr
	case <-t.C:
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
	return fmt.Errorf("pgseal did not stop within %v and was killed", grace)
}
