package mesosmanager

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mm.json")
	if err := os.WriteFile(file, []byte(`{"marathon":["http://m1:8080"],"controller":"unix:///run/weft/controller.sock","lease_ttl":"9s","unreachable_grace":120,"networks":["weft"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c Config)
		wantErr []string
	}{
		{name: "defaults", args: []string{"--marathon", "http://m1:8080"}, check: func(t *testing.T, c Config) {
			if !slices.Equal(c.Networks, []string{"weft", "contrail-cni-plugin"}) || c.Listen != ":8109" ||
				time.Duration(c.LeaseTTL) != 6*time.Second || c.RenewInterval() != 2*time.Second ||
				time.Duration(c.UnreachableGrace) != 5*time.Minute || c.MesosMaster != "" || c.ID == "" || c.Controller != DefaultController {
				t.Errorf("defaults %+v", c)
			}
		}},
		{name: "flags", args: []string{"--marathon", "http://m1:8080,https://m2:8443", "--marathon", "http://m3:8080",
			"--marathon-token", "tok", "--controller", "http://ctl:8082", "--networks", "a,b", "--listen", "127.0.0.1:9000",
			"--lease-ttl", "3s", "--unreachable-grace", "1m", "--mesos-master", "http://master:5050", "--agent-grace", "2m",
			"--id", "mm-1", "--log-level", "debug"}, check: func(t *testing.T, c Config) {
			if !slices.Equal(c.Marathon, []string{"http://m1:8080", "https://m2:8443", "http://m3:8080"}) || c.MarathonToken != "tok" ||
				!slices.Equal(c.Networks, []string{"a", "b"}) || c.ID != "mm-1" || time.Duration(c.AgentGrace) != 2*time.Minute ||
				c.MesosMaster != "http://master:5050" || c.RenewInterval() != time.Second {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "config file then flags", args: []string{"--config", file, "--lease-ttl", "12s"}, check: func(t *testing.T, c Config) {
			if c.Marathon[0] != "http://m1:8080" || c.Controller != "unix:///run/weft/controller.sock" || time.Duration(c.LeaseTTL) != 12*time.Second ||
				time.Duration(c.UnreachableGrace) != 2*time.Minute || !slices.Equal(c.Networks, []string{"weft"}) {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "no marathon", args: nil, wantErr: []string{"marathon: at least one URL"}},
		{name: "bad values", args: []string{"--marathon", "m1:8080", "--controller", "ftp://x", "--lease-ttl", "1500ms",
			"--marathon-user", "u", "--marathon-token", "t", "--listen", "8109", "--log-level", "loud", "--mesos-subscribe"},
			wantErr: []string{`marathon: "m1:8080"`, "controller:", "lease-ttl: 1.5s must be whole seconds", "marathon-token: cannot be combined",
				"listen:", "log-level:", "mesos-subscribe: needs --mesos-master"}},
		{name: "negative grace", args: []string{"--marathon", "http://m", "--unreachable-grace", "-1s", "--lease-ttl", "0s"},
			wantErr: []string{"unreachable-grace", "lease-ttl: 0s is out of range"}},
		{name: "extra argument", args: []string{"--marathon", "http://m", "extra"}, wantErr: []string{`unexpected argument "extra"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.args, io.Discard)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error for %v", tc.args)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	if _, err := ParseConfig([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}
