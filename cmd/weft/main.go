// Command weft runs Weft's daemons (`weft controller`, `weft agent`,
// `weft mesos-manager`) and the lab (`weft lab`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/weft-sdn/weft/internal/agent"
	"github.com/weft-sdn/weft/internal/controller"
	"github.com/weft-sdn/weft/internal/lab"
	"github.com/weft-sdn/weft/internal/mesosmanager"
)

const usage = `Usage: weft <command> [flags]

Commands:
  controller    run the controller (resource API, IPAM, watch stream, overlay master)
  agent         run the node agent (data planes, overlays, CNI socket, port API)
  mesos-manager follow Marathon and Mesos: port metadata, release, resync, cleanup
  lab           a whole cluster on this machine: up, status, task, exec, matrix, down
  version       print the version

Run 'weft <command> --help' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "controller":
		var cfg controller.Config
		cfg, err = controller.ParseConfig(args[1:], os.Stderr)
		if err == nil {
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Level()}))
			var c *controller.Controller
			c, err = controller.New(ctx, cfg, log)
			if err == nil {
				err = c.Serve(ctx)
				c.Close()
			}
		}
	case "agent":
		var cfg agent.Config
		cfg, err = agent.ParseConfig(args[1:], os.Stderr)
		if err == nil {
			if cfg.MaxProcs > 0 {
				runtime.GOMAXPROCS(cfg.MaxProcs)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Level()}))
			var a *agent.Agent
			if a, err = agent.New(cfg, agent.Options{Log: log}); err == nil {
				err = a.Run(ctx)
			}
		}
	case "mesos-manager":
		err = mesosmanager.Main(ctx, args[1:], os.Stderr)
	case "lab":
		return lab.Main(ctx, args[1:], os.Stdout, os.Stderr)
	case "version", "--version":
		fmt.Println("weft", controller.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "weft: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "weft %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
