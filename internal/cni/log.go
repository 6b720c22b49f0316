package cni

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// openLog returns a logger writing to the configured log file, or one that
// discards everything when no file is configured. Logging never writes to
// stdout (the result channel) and never fails a command: when the file
// cannot be opened, one line goes to stderr and logging is off. The returned
// function closes the file.
func openLog(conf *NetConf, program string, stderr io.Writer) (*slog.Logger, func()) {
	if conf == nil || conf.LogFile == "" {
		return slog.New(slog.DiscardHandler), func() {}
	}
	path := conf.LogFile
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		fmt.Fprintf(stderr, "%s: logging disabled: %v\n", program, err)
		return slog.New(slog.DiscardHandler), func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		fmt.Fprintf(stderr, "%s: logging disabled: %v\n", program, err)
		return slog.New(slog.DiscardHandler), func() {}
	}
	h := slog.NewTextHandler(f, &slog.HandlerOptions{Level: conf.LogLevel})
	logger := slog.New(h).With("plugin", program, "pid", os.Getpid())
	return logger, func() { _ = f.Close() }
}
