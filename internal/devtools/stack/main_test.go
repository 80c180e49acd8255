package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"plain", "127.0.0.1"},
		{"empty", ""},
		{"spaces", "host=a port=1 sslrootcert=/tmp/x y/ca.crt"},
		{"single quotes", `it's 'quoted'`},
		{"shell syntax", "$(touch /nonexistent) `x` \\ \" ; | &"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("sh", "-c", "V="+shellQuote(tc.in)+"; printf %s \"$V\"").Output()
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.in {
				t.Errorf("sh read %q, want %q", out, tc.in)
			}
		})
	}
}

func TestWriteEnv(t *testing.T) {
	var b bytes.Buffer
	if err := writeEnv(&b, []assignment{{"STACK_A", "x"}, {"STACK_B", "it's"}}); err != nil {
		t.Fatal(err)
	}
	want := "STACK_A='x'\nSTACK_B='it'\\''s'\n# ready\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestReadyAddr(t *testing.T) {
	for _, tc := range []struct {
		name, line, addr string
		ok               bool
	}{
		{"ready", `{"level":"info","listen":"127.0.0.1:41234","upstream":"x","message":"pgseal is ready"}`, "127.0.0.1:41234", true},
		{"other message", `{"level":"info","listen":"127.0.0.1:1","message":"shutting down"}`, "", false},
		{"no address", `{"level":"info","message":"pgseal is ready"}`, "", false},
		{"not JSON", `pgseal is ready`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, ok := readyAddr([]byte(tc.line))
			if addr != tc.addr || ok != tc.ok {
				t.Errorf("readyAddr = %q, %v; want %q, %v", addr, ok, tc.addr, tc.ok)
			}
		})
	}
}

func TestScanReady(t *testing.T) {
	log := "{\"message\":\"starting\"}\n{\"listen\":\"127.0.0.1:5\",\"message\":\"pgseal is ready\"}\n{\"message\":\"later\"}\n"
	var copied bytes.Buffer
	addr, rest, err := scanReady(strings.NewReader(log), &copied)
	if err != nil || addr != "127.0.0.1:5" {
		t.Fatalf("scanReady = %q, %v", addr, err)
	}
	if !rest.Scan() || rest.Text() != `{"message":"later"}` {
		t.Errorf("the rest of the log was not left to read")
	}
	if strings.Count(copied.String(), "\n") != 2 {
		t.Errorf("copied %q, want the two lines up to the ready line", copied.String())
	}
	if _, _, err := scanReady(strings.NewReader("{\"message\":\"bye\"}\n"), &copied); !errors.Is(err, errNotReady) {
		t.Errorf("scanReady on a log without the ready line: %v, want errNotReady", err)
	}
}

func TestCheckServeArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"none", nil, true},
		{"tls off", []string{"--tls-require=false"}, true},
		{"debug", []string{"--log-level", "debug"}, true},
		{"warn separate", []string{"--log-level", "warn"}, false},
		{"warn joined", []string{"--log-level=warn"}, false},
		{"console", []string{"--log-format=console"}, false},
		{"listen", []string{"--listen", "127.0.0.1:6432"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkServeArgs(tc.args); (err == nil) != tc.ok {
				t.Errorf("checkServeArgs(%q) = %v, want ok=%v", tc.args, err, tc.ok)
			}
		})
	}
}
