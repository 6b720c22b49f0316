// Package mesosmanager is `weft mesos-manager`: it keeps the controller's
// ports in step with what Marathon and Mesos say about the tasks behind
// them.
//
// The node agents create a Port at CNI ADD (container id, interface, node,
// addresses, the NetworkInfo labels) and delete it at CNI DEL. The manager
// adds what only Marathon knows and repairs what a missed DEL leaves:
//
//   - Metadata. For every app task and pod instance on a managed network
//     (Marathon network names from Config.Networks, default "weft" and
//     "contrail-cni-plugin"; a ≤ 1.4 app's ipAddress.networkName counts
//     too) it finds the task's ports — by node (task host = node name, or
//     a node whose underlay address is the host) and address (task
//     ipAddresses ∩ port ips), else by the Mesos container id when the
//     Mesos master is followed — and stores app id, task id, instance id
//     and host on them, plus what the Contrail labels ask for: networks,
//     project-name, domain-name and network-subnets are checked against the
//     port, security-groups (fq names that must exist) and floating-ips
//     ("pool-fq(address)" entries) are stored on it, and a FloatingIP
//     object is created in each pool. A bad label is logged and recorded as
//     a problem naming the task and the label; it never stops the other
//     labels, tasks or events.
//   - Release. A terminal task state (FINISHED, FAILED, KILLED, ERROR,
//     DROPPED, GONE, GONE_BY_OPERATOR), UNREACHABLE / UNKNOWN / LOST after
//     Config.UnreachableGrace, and a terminal pod-instance condition delete
//     the task's ports and release their addresses (owner
//     "<container-id>/<interface>"). Both are idempotent: the agent may have
//     done it already.
//   - Resync. After the event stream (re)connects and delivers its first
//     event, and every Config.ResyncInterval, the manager reads Marathon's
//     whole state, deletes the ports it once tagged (task_id set and label
//     weft/managed-by=mesos-manager) whose task Marathon no longer runs, and
//     fills in the metadata of the rest. Ports of containers it never
//     tagged (non-Marathon containers) are never touched.
//   - Cleanup (optional, with Config.MesosMaster): follows the Mesos
//     master's agents (polling /master/state, or the v1 operator API
//     SUBSCRIBE stream) and deletes the Weft node of an agent gone for
//     longer than Config.AgentGrace, once; the controller then releases
//     everything the node held.
//
// It is written as a reconciler: desired port metadata is a function of
// Marathon's state (snapshot, then events); only differences are written,
// with compare-and-swap on the port's resource_version, so running it twice
// changes nothing. Several managers may run; one leads through the
// controller lease "mesos-manager" (Elector) and only the leader follows
// the event stream and writes. Every instance serves an introspection page
// and Prometheus metrics (Config.Listen, default :8109).
//
// The edges are interfaces with an in-memory fake each, which prints its
// state as text for golden tests: MarathonSource (FakeMarathon), Controller
// (FakeController) and MesosSource (FakeMesos).
package mesosmanager
