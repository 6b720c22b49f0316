// Command weft-bench is Weft's benchmark harness; see internal/bench.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/weft-sdn/weft/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
