// Command weft-cni is Weft's CNI plugin. The Mesos network/cni isolator (or
// any CNI runtime) runs it; it asks the local Weft agent, over the agent's
// unix socket, to attach or detach the container. It may also be installed
// under the name contrail-cni-plugin and read a Contrail CNI configuration.
//
// The binary links only the standard library, the CNI library's types and
// version packages, and internal/api: no etcd, nftables or netlink code.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/weft-sdn/weft/internal/cni"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cni.Main(ctx, cni.Invocation{
		Program: filepath.Base(os.Args[0]),
		Getenv:  os.Getenv,
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
	})
	stop()
	os.Exit(code)
}
