// Command weft-cni is Weft's CNI plugin. The Mesos network/cni isolator (or
// any CNI runtime) runs it; it asks the local Weft agent, over the agent's
// unix socket, to attach or detach the container. It may also be installed
// under the name contrail-cni-plugin and read a Contrail CNI configuration.
//
// The binary links only the standard library, the CNI library's types,
// utils and version packages, and internal/api: no etcd, nftables, netlink or
// net/http code. It is started for every container, so it is built without
// cgo (see the Makefile) and installs no signal handler: SIGINT or SIGTERM
// end it at once, which closes its connection to the agent just as a
// cancelled request would.
package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/weft-sdn/weft/internal/cni"
)

func main() {
	os.Exit(cni.Main(context.Background(), cni.Invocation{
		Program: filepath.Base(os.Args[0]),
		Getenv:  os.Getenv,
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
	}))
}
