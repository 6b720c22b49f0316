package lab

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every command answers --help with its usage and exit status 0.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"up", "--help"}, {"status", "--help"}, {"down", "--help"},
		{"task", "--help"}, {"task", "run", "--help"}, {"task", "list", "--help"}, {"task", "kill", "--help"},
		{"exec", "--help"}, {"matrix", "--help"}, {"responder", "--help"},
	} {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), args, &out, &errOut)
		text := out.String() + errOut.String()
		if code != 0 || !strings.Contains(strings.ToLower(text), "usage") || strings.Contains(text, "help requested") {
			t.Errorf("weft lab %s: exit %d\n%s", strings.Join(args, " "), code, text)
		}
	}
}

// The commands with -o take table or json, as the usage says, and refuse
// anything else before they look for a lab.
func TestOutputFlag(t *testing.T) {
	var usage bytes.Buffer
	Main(context.Background(), []string{"--help"}, &usage, &usage)
	for _, cmd := range [][]string{{"status"}, {"task", "list"}, {"matrix"}} {
		name := strings.Join(cmd, " ")
		shown := false
		for _, line := range strings.Split(usage.String(), "\n") {
			if strings.HasPrefix(line, "  "+name+" ") && strings.Contains(line, "[-o table|json]") {
				shown = true
			}
		}
		if !shown {
			t.Errorf("the usage does not show -o for %s:\n%s", name, usage.String())
		}
		var out, errOut bytes.Buffer
		args := append(append([]string{"--state-dir", t.TempDir()}, cmd...), "-o", "yaml")
		if code := Main(context.Background(), args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `-o "yaml": want table or json`) {
			t.Errorf("weft lab %s -o yaml: exit %d, stderr %q; want 2 and the choices", name, code, errOut.String())
		}
	}
}

// Options that cannot work are refused before anything is made.
func TestOptionsRefused(t *testing.T) {
	for _, tt := range []struct {
		opts Options
		want string
	}{
		{Options{Nodes: 255}, "--nodes 255 is out of range"},
		{Options{NoOverlay: true, OverlayConfig: "master.json"}, "--no-overlay and --overlay-config exclude each other"},
		{Options{OverlayCNI: "calico"}, `--overlay-cni "calico": want bridge or weft`},
		{Options{BinDir: "/nonexistent"}, "weft not found in /nonexistent"},
	} {
		o := tt.opts
		o.StateDir = t.TempDir()
		if err := o.defaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want %q", tt.opts, err, tt.want)
		}
	}
}
