// Package overlay models the DC/OS overlay ("virtual network")
// configuration and its allocation rules, so that Weft can take the place
// of the DC/OS overlay master and agent modules (dcos/dcos-mesos-modules,
// overlay/) and read what they wrote.
//
// It holds no state and does no I/O:
//
//   - NetworkConfig and ParseNetworkConfig: the master module's network
//     configuration (a bare object, or a DC/OS master.json with its
//     "network" key), validated with the rules of the Mesos master module,
//     of the DC/OS installer, and Weft's own; every error is a *FieldError
//     naming the JSON path of the bad value.
//   - AgentConfig and ParseAgentConfig: the agent module's configuration;
//     ModuleConfigPaths finds both files in a Mesos --modules JSON.
//   - MAC, LowestFreeAddr, LowestFreeSubnet, Halves, Gateway, Capacity: the
//     master's allocation rules (lowest free first; VTEP MAC from the OUI and
//     the low 24 bits of the VTEP address; agent subnets split into a Mesos
//     and a Docker half). Exhaustion is an *ExhaustedError with the numbers.
//   - State, AgentInfo, AgentOverlayInfo: the JSON of GET
//     /overlay-master/state and GET /overlay-agent/overlay, keys in
//     alphabetical order as DC/OS renders them, and BuildAgentOverlay.
//   - MesosCNIConfig: the <cni_dir>/<name>.conf file an agent writes for
//     the Mesos CNI isolator.
//
// The contract is shared/reference/dcos-overlay.md.
package overlay
