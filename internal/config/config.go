// Package config is how Weft's daemons take their configuration: a struct
// with defaults, then an optional JSON file (--config), then flags, which
// override the file. It holds the pieces every daemon shares: the loading
// order, repeatable list flags, and durations written as "60s".
package config

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// Duration is a time.Duration written as "60s" in JSON files (a bare
// number is read as seconds).
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "60s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("duration must be a string like \"60s\": %w", err)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ListFlag is a repeatable flag that also takes comma-separated values;
// the first use replaces the default.
func ListFlag(dst *[]string) flag.Value { return &listFlag{dst: dst} }

type listFlag struct {
	dst *[]string
	set bool
}

func (l *listFlag) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		*l.dst, l.set = nil, true
	}
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.dst = append(*l.dst, p)
		}
	}
	return nil
}

// DurationFlag is a flag of a Duration.
func DurationFlag(dst *Duration) flag.Value { return durationFlag{dst} }

type durationFlag struct{ dst *Duration }

func (d durationFlag) String() string {
	if d.dst == nil {
		return ""
	}
	return time.Duration(*d.dst).String()
}

func (d durationFlag) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	*d.dst = Duration(x)
	return nil
}

// Load builds a configuration from args: defaults(), then the JSON file
// named by the --config flag (strictly decoded: unknown keys are errors
// naming them), then the flags again over it. flags binds the flag set to
// a configuration and to the --config value. Positional arguments are
// refused.
func Load[T any](args []string, defaults func() T, flags func(cfg *T, file *string) *flag.FlagSet) (T, error) {
	cfg := defaults()
	var file string
	fs := flags(&cfg, &file)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		cfg = defaults()
		if err := api.DecodeStrict(b, &cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", file, err)
		}
		fs = flags(&cfg, &file)
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, nil
}

// NewFlagSet is a flag set that reports errors (instead of exiting) and
// prints usage to out (stderr when nil).
func NewFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if out == nil {
		out = os.Stderr
	}
	fs.SetOutput(out)
	return fs
}

// ParseLevel reads a log level: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(s)); err != nil {
		return lvl, fmt.Errorf("log-level: %q is not debug, info, warn or error", s)
	}
	return lvl, nil
}
