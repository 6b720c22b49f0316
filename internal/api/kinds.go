package api

// Kinds lists every resource kind in a stable order.
var Kinds = []Kind{
	KindDomain, KindProject, KindNetwork, KindPort, KindIPReservation, KindNode,
	KindFloatingIPPool, KindFloatingIP, KindSecurityGroup, KindNetworkPolicy,
	KindService, KindBlock,
}

var plurals = map[Kind]string{
	KindDomain:         "domains",
	KindProject:        "projects",
	KindNetwork:        "networks",
	KindPort:           "ports",
	KindIPReservation:  "ip-reservations",
	KindNode:           "nodes",
	KindFloatingIPPool: "floating-ip-pools",
	KindFloatingIP:     "floating-ips",
	KindSecurityGroup:  "security-groups",
	KindNetworkPolicy:  "network-policies",
	KindService:        "services",
	KindBlock:          "blocks",
}

// Plural is the URL collection of a kind: /v1/<plural>.
func (k Kind) Plural() string { return plurals[k] }

// KindForPlural maps a URL collection back to its kind.
func KindForPlural(p string) (Kind, bool) {
	for k, v := range plurals {
		if v == p {
			return k, true
		}
	}
	return "", false
}

// IPAMOwned reports whether objects of the kind are written only through
// the IPAM endpoints (/v1/ipam/...), never by generic create/update/delete.
func (k Kind) IPAMOwned() bool { return k == KindIPReservation || k == KindBlock }
