// Package cni is Weft's CNI plugin: the code behind cmd/weft-cni, which the
// Mesos network/cni isolator (or any CNI runtime) runs to attach a
// container to a Weft network. The plugin does no networking itself: it
// turns the CNI invocation into one call of the local Weft agent's API on
// its unix socket (internal/api/agent.go) and prints the agent's answer as
// a CNI result.
//
//	ADD     POST /v1/attach  api.AttachRequest  -> result in the config's cniVersion
//	DEL     POST /v1/detach  api.DetachRequest  (404 from the agent = already gone)
//	CHECK   POST /v1/check   api.DetachRequest  (cniVersion >= 0.4.0)
//	GC      POST /v1/gc      api.GCRequest      (cniVersion >= 1.1.0)
//	STATUS  GET  /v1/status                     (cniVersion >= 1.1.0; code 50 when not ready)
//	VERSION                                     0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0
//
// # Mesos
//
// Mesos never sets CNI_ARGS; it injects args["org.apache.mesos"].network_info
// (a NetworkInfo protobuf rendered as JSON) into the config on stdin, and
// reuses the same stdin for DEL. The NetworkInfo labels select the network
// (networks, project-name, domain-name, network-subnets, security-groups;
// the Contrail Mesos labels), ip_addresses asks for explicit addresses or
// address families. Mesos parses only the CNI 0.1.0/0.2.0 result shape
// (ip4/ip6/dns), so a config without cniVersion, or with 0.1.0 or 0.2.0,
// gets a {"cniVersion":"0.2.0","ip4":...} result; later versions get the
// interfaces/ips form, in which Mesos sees no address.
//
// # Contrail
//
// The binary may be installed as contrail-cni-plugin with a Contrail CNI
// configuration: the "contrail" object is accepted wherever it appears.
// poll-timeout × poll-retries becomes the deadline of the agent call (capped
// at 60 s), log-file and log-level are honoured, mtu is passed on; the
// vRouter and mesos-manager addresses are accepted and ignored, because
// Weft always talks to its own agent's unix socket.
//
// # Failure behaviour
//
// Errors are CNI error JSON on stdout ({cniVersion, code, msg, details}),
// exit status 1; README.md lists the codes. The agent is called once, with
// no retry loop: a missing socket or refused connection fails at once (code
// 11), a hung agent fails at the configured timeout (code 11).
//
// DEL is idempotent (an attachment the agent does not know is success, and
// CNI_NETNS may be absent), but it fails, with code 11, when the agent
// cannot be reached: the agent owns the release of the container's address,
// so reporting success would leak it. Mesos keeps the container's CNI
// checkpoint after a failed DEL and calls DEL again during a later cleanup
// or agent recovery. DEL, GC and STATUS parse the config leniently (bad
// args, weft or contrail values fall back to defaults and are logged):
// Mesos passes DEL the checkpointed stdin of the ADD, even when that ADD
// failed on a bad label, and such a DEL must not fail forever.
//
// # Linking
//
// The plugin must link no etcd, nftables or netlink code. That is why it
// has its own dispatcher instead of the CNI library's skel package, which
// imports github.com/vishvananda/netns; a test runs go list -deps on the
// command to keep it so.
//
// Logging (log/slog) goes only to the configured log file, never to stdout,
// which carries the result.
package cni
