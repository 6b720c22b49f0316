package config

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Name  string   `json:"name"`
	Peers []string `json:"peers"`
	Wait  Duration `json:"wait"`
}

func defaults() testConfig {
	return testConfig{Name: "default", Peers: []string{"a"}, Wait: Duration(time.Second)}
}

func flags(c *testConfig, file *string) *flag.FlagSet {
	fs := NewFlagSet("test", &strings.Builder{})
	fs.StringVar(file, "config", "", "")
	fs.StringVar(&c.Name, "name", c.Name, "")
	fs.Var(ListFlag(&c.Peers), "peer", "")
	fs.Var(DurationFlag(&c.Wait), "wait", "")
	return fs
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.json")
	if err := os.WriteFile(file, []byte(`{"name":"from-file","peers":["f1","f2"],"wait":"5s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"nmae":"typo"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		want    testConfig
		wantErr string
	}{
		{nil, defaults(), ""},
		{[]string{"--peer", "x,y", "--peer", "z"}, testConfig{"default", []string{"x", "y", "z"}, Duration(time.Second)}, ""},
		{[]string{"--config", file}, testConfig{"from-file", []string{"f1", "f2"}, Duration(5 * time.Second)}, ""},
		// Flags override the file, whatever their order.
		{[]string{"--wait", "2m", "--config", file, "--peer", "p"}, testConfig{"from-file", []string{"p"}, Duration(2 * time.Minute)}, ""},
		{[]string{"--config", bad}, testConfig{}, "nmae"},
		{[]string{"--config", filepath.Join(dir, "missing.json")}, testConfig{}, "read config"},
		{[]string{"stray"}, testConfig{}, `unexpected argument "stray"`},
		{[]string{"--wait", "soon"}, testConfig{}, "invalid value"},
	}
	for _, tc := range tests {
		got, err := Load(tc.args, defaults, flags)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Load(%v) = %v, want error with %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.Name != tc.want.Name || strings.Join(got.Peers, ",") != strings.Join(tc.want.Peers, ",") || got.Wait != tc.want.Wait {
			t.Errorf("Load(%v) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	for in, want := range map[string]time.Duration{`"1m30s"`: 90 * time.Second, `2.5`: 2500 * time.Millisecond} {
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("unmarshal %s = %v, %v", in, time.Duration(d), err)
		}
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("bad duration accepted")
	}
	if b, _ := json.Marshal(Duration(time.Minute)); string(b) != `"1m0s"` {
		t.Errorf("marshal: %s", b)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "WARN": "WARN", "error": "ERROR"} {
		if l, err := ParseLevel(in); err != nil || l.String() != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, l, err)
		}
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Errorf("ParseLevel(loud) = %v, want an error naming log-level", err)
	}
}
