package emulator

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestMainUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--help"}, 0, "-network_cni_config_dir"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--network_cni_config_dir", "/x"}, 2, "--listen is required"},
		{[]string{"--listen", "unix:/tmp/x.sock", "extra"}, 2, "unexpected arguments: extra"},
		{[]string{"--listen", "unix:/tmp/x.sock", "--log_level", "loud"}, 2, "--log_level"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), tt.args, &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("Main(%q) = %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.stderr)
		}
	}
}
