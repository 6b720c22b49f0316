// Command weftctl is the command-line client of the Weft controller API.
// Run "weftctl --help" for its commands; the work is done by package
// internal/weftctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/weft-sdn/weft/internal/weftctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := weftctl.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
