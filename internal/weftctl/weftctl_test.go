package weftctl

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

const (
	blueUUID = "0b7c6f5e-1d2a-4c3b-9e8f-7a6b5c4d3e2f"
	redUUID  = "5f0e9d8c-7b6a-4958-8372-6150a4b3c2d1"

	netBlue = `{"kind":"network","uuid":"` + blueUUID + `","name":"blue","fq_name":"default-domain:default-project:blue","parent":"default-domain:default-project","network_kind":"virtual","subnets":[{"cidr":"10.0.0.0/24","gateway":"10.0.0.1","block_prefix":26},{"cidr":"fd00:1::/64"}],"vni":4097,"labels":{"team":"core","env":"prod"},"created_at":"2026-01-02T03:04:05Z","resource_version":12}`
	netRed  = `{"kind":"network","uuid":"` + redUUID + `","name":"red","fq_name":"acme:web:red","parent":"acme:web","network_kind":"overlay","subnets":[{"cidr":"192.168.0.0/16"}]}`

	resBlue5 = `{"kind":"ip_reservation","name":"10.0.0.5","network":"default-domain:default-project:blue","address":"10.0.0.5","owner":"c1","node":"agent-1"}`
	resBlue6 = `{"kind":"ip_reservation","name":"fd00:1::5","network":"default-domain:default-project:blue","address":"fd00:1::5","owner":"c1"}`
)

// The overlay master's answers, in DC/OS's shapes (one line, as the
// controller sends them).
const (
	overlayState = `{"agents":[` +
		`{"ip":"198.18.0.1","overlays":[` +
		`{"backend":{"vxlan":{"vni":1024,"vtep_ip":"44.128.0.1/20","vtep_ip6":"fd01:a::1/64","vtep_mac":"70:b3:d5:80:00:01","vtep_name":"vtep1024"}},` +
		`"docker_bridge":{"ip":"9.0.0.128/25","name":"d-dcos"},"info":{"enabled":true,"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"},` +
		`"mesos_bridge":{"ip":"9.0.0.0/25","name":"m-dcos"},"state":{"status":"STATUS_OK"},"subnet":"9.0.0.0/24"},` +
		`{"backend":{"vxlan":{"vni":1024,"vtep_ip":"44.128.0.1/20","vtep_ip6":"fd01:a::1/64","vtep_mac":"70:b3:d5:80:00:01","vtep_name":"vtep1024"}},` +
		`"info":{"enabled":true,"name":"dcos6","prefix6":80,"subnet6":"fd01:b::/64"},` +
		`"mesos_bridge":{"ip6":"fd01:b::/81","name":"m-dcos6"},"state":{"error":"docker engine: connection refused","status":"STATUS_FAILED"},"subnet6":"fd01:b::/80"}]}],` +
		`"network":{"overlays":[{"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"}],"vtep_mac_oui":"70:B3:D5:00:00:00","vtep_subnet":"44.128.0.0/20"}}`
	overlayStateEmpty = `{"agents":[],"network":{"overlays":[{"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"}],"vtep_mac_oui":"70:B3:D5:00:00:00","vtep_subnet":"44.128.0.0/20"}}`
	overlayUsage      = `{"overlays":[` +
		`{"name":"dcos","network":"default-domain:default-project:dcos","enabled":true,"subnet":"9.0.0.0/8","prefix":24,"subnets":65536,"subnets_used":3,"subnets6_used":0,"exhausted":false},` +
		`{"name":"tiny","network":"default-domain:default-project:tiny","enabled":false,"subnet":"10.9.0.0/23","prefix":24,"subnets":2,"subnets_used":2,` +
		`"subnet6":"fd02::/64","prefix6":80,"subnets6":65536,"subnets6_used":1,"exhausted":true,"failed_nodes":["node3: no free /24 subnet","node4: no free /24 subnet"]}]}`
)

// answer is what the fake controller sends for one route.
type answer struct {
	status int
	body   string
}

func ok(body string) answer { return answer{http.StatusOK, body} }

// fakeController answers fixed routes ("METHOD /path" or
// "METHOD /path?query") and records every request as
// "METHOD /path[?query] [body]".
type fakeController struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []string
	routes map[string]answer
}

func newFakeController(t *testing.T, routes map[string]answer) *fakeController {
	t.Helper()
	f := &fakeController{routes: routes}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		key := r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			key += "?" + r.URL.RawQuery
		}
		rec := key
		if len(b) > 0 {
			rec += " " + string(b)
		}
		f.mu.Lock()
		f.seen = append(f.seen, rec)
		f.mu.Unlock()
		a, found := f.routes[key]
		if !found {
			a = answer{http.StatusNotFound, fmt.Sprintf(`{"error":"no route %s"}`, key)}
		}
		if a.status == 0 {
			a.status = http.StatusOK
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeController) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// text joins lines into a golden output.
func text(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

func TestRun(t *testing.T) {
	Version = "v9.9.9-test"
	goVersion = "go1.test"
	tests := []struct {
		name     string
		args     []string
		routes   map[string]answer
		code     int
		stdout   string
		stderr   string   // exact, unless stderrHas is set
		requests []string // nil: none
	}{{
		name:   "network create, flags after NAME",
		args:   []string{"network", "create", "blue", "--subnet", "10.0.0.0/24"},
		routes: map[string]answer{"POST /v1/networks": ok(netBlue)},
		stdout: text(
			"NAME   FQ_NAME                               KIND      VNI    SUBNETS                   UUID",
			"blue   default-domain:default-project:blue   virtual   4097   10.0.0.0/24,fd00:1::/64   "+blueUUID,
		),
		requests: []string{`POST /v1/networks {"kind":"network","name":"blue","fq_name":"default-domain:default-project:blue","parent":"default-domain:default-project","network_kind":"virtual","subnets":[{"cidr":"10.0.0.0/24"}]}`},
	}, {
		name: "network create dual stack, fq_name, flags first",
		args: []string{"network", "create", "--kind=overlay", "--vni", "1024", "--subnet", "192.168.0.0/16", "--gateway", "192.168.0.254",
			"--block-prefix", "24", "--subnet", "fd00:2::/64", "--gateway", "", "--block-prefix", "120", "acme:web:red", "-o", "json"},
		routes:   map[string]answer{"POST /v1/networks": ok(netRed)},
		stdout:   text(`{`, `  "kind": "network",`, `  "uuid": "`+redUUID+`",`, `  "name": "red",`, `  "fq_name": "acme:web:red",`, `  "parent": "acme:web",`, `  "network_kind": "overlay",`, `  "subnets": [`, `    {`, `      "cidr": "192.168.0.0/16"`, `    }`, `  ]`, `}`),
		requests: []string{`POST /v1/networks {"kind":"network","name":"red","fq_name":"acme:web:red","parent":"acme:web","network_kind":"overlay","subnets":[{"cidr":"192.168.0.0/16","gateway":"192.168.0.254","block_prefix":24},{"cidr":"fd00:2::/64","block_prefix":120}],"vni":1024}`},
	}, {
		name:     "network create in --project",
		args:     []string{"-o", "json", "network", "create", "red", "--project", "acme:web", "--subnet", "192.168.0.0/16"},
		routes:   map[string]answer{"POST /v1/networks": ok(`{"name":"red"}`)},
		stdout:   text(`{`, `  "name": "red"`, `}`),
		requests: []string{`POST /v1/networks {"kind":"network","name":"red","fq_name":"acme:web:red","parent":"acme:web","network_kind":"virtual","subnets":[{"cidr":"192.168.0.0/16"}]}`},
	}, {
		name:     "network create: field error from the controller",
		args:     []string{"network", "create", "blue", "--subnet", "10.0.0/24"},
		routes:   map[string]answer{"POST /v1/networks": {400, `{"error":"invalid CIDR \"10.0.0/24\"","field":"subnets[0].cidr"}`}},
		code:     1,
		stderr:   text(`weftctl: field subnets[0].cidr: invalid CIDR "10.0.0/24"`),
		requests: []string{`POST /v1/networks {"kind":"network","name":"blue","fq_name":"default-domain:default-project:blue","parent":"default-domain:default-project","network_kind":"virtual","subnets":[{"cidr":"10.0.0/24"}]}`},
	}, {
		name:     "network create: conflict",
		args:     []string{"network", "create", "blue", "--subnet", "10.0.0.0/24"},
		routes:   map[string]answer{"POST /v1/networks": {409, `{"error":"network default-domain:default-project:blue exists","field":"fq_name"}`}},
		code:     1,
		stderr:   text(`weftctl: field fq_name: network default-domain:default-project:blue exists`),
		requests: []string{`POST /v1/networks {"kind":"network","name":"blue","fq_name":"default-domain:default-project:blue","parent":"default-domain:default-project","network_kind":"virtual","subnets":[{"cidr":"10.0.0.0/24"}]}`},
	}, {
		name:   "network create: no subnet",
		args:   []string{"network", "create", "blue"},
		code:   2,
		stderr: text("weftctl: at least one --subnet is required", "Run 'weftctl network create --help' for usage."),
	}, {
		name:   "network create: more gateways than subnets",
		args:   []string{"network", "create", "blue", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2"},
		code:   2,
		stderr: text("weftctl: 2 --gateway for 1 --subnet: the i-th --gateway applies to the i-th --subnet", "Run 'weftctl network create --help' for usage."),
	}, {
		name:   "network create: bad kind",
		args:   []string{"network", "create", "blue", "--subnet", "10.0.0.0/24", "--kind", "flat"},
		code:   2,
		stderr: text(`weftctl: --kind "flat": want virtual or overlay`, "Run 'weftctl network create --help' for usage."),
	}, {
		name:   "network create: fq_name outside --project",
		args:   []string{"network", "create", "a:b:blue", "--project", "a:c", "--subnet", "10.0.0.0/24"},
		code:   2,
		stderr: text(`weftctl: network "a:b:blue" is not in --project "a:c"`, "Run 'weftctl network create --help' for usage."),
	}, {
		name:   "network create: bad fq_name",
		args:   []string{"network", "create", "a:blue", "--subnet", "10.0.0.0/24"},
		code:   2,
		stderr: text(`weftctl: network name "a:blue": want NAME or DOMAIN:PROJECT:NAME`, "Run 'weftctl network create --help' for usage."),
	}, {
		name:   "network create: two names",
		args:   []string{"network", "create", "blue", "red", "--subnet", "10.0.0.0/24"},
		code:   2,
		stderr: text(`weftctl: network create: want 1 argument(s), got 2`, "Run 'weftctl network create --help' for usage."),
	}, {
		name:   "network create: bad --block-prefix",
		args:   []string{"network", "create", "blue", "--subnet", "10.0.0.0/24", "--block-prefix", "x"},
		code:   2,
		stderr: text(`weftctl: invalid value "x" for flag -block-prefix: not an integer`, "Run 'weftctl network create --help' for usage."),
	}, {
		name:   "network list",
		args:   []string{"network", "list"},
		routes: map[string]answer{"GET /v1/networks": ok(`{"kind":"network","revision":40,"items":[` + netBlue + `,` + netRed + `]}`)},
		stdout: text(
			"NAME   FQ_NAME                               KIND      VNI    SUBNETS                   UUID",
			"blue   default-domain:default-project:blue   virtual   4097   10.0.0.0/24,fd00:1::/64   "+blueUUID,
			"red    acme:web:red                          overlay   -      192.168.0.0/16            "+redUUID,
		),
		requests: []string{"GET /v1/networks"},
	}, {
		name:     "network list, empty",
		args:     []string{"network", "list"},
		routes:   map[string]answer{"GET /v1/networks": ok(`{"kind":"network","revision":40,"items":[]}`)},
		stdout:   text("NAME   FQ_NAME   KIND   VNI   SUBNETS   UUID"),
		requests: []string{"GET /v1/networks"},
	}, {
		name:     "network list -o json",
		args:     []string{"network", "-o", "json", "list"},
		routes:   map[string]answer{"GET /v1/networks": ok(`{"kind":"network","revision":40,"items":[{"name":"a"}, {"name":"b","x":[1,2]}]}`)},
		stdout:   text(`[`, `  {`, `    "name": "a"`, `  },`, `  {`, `    "name": "b",`, `    "x": [`, `      1,`, `      2`, `    ]`, `  }`, `]`),
		requests: []string{"GET /v1/networks"},
	}, {
		name:     "network list -o json, empty",
		args:     []string{"network", "list", "-o=json"},
		routes:   map[string]answer{"GET /v1/networks": ok(`{"kind":"network","revision":40}`)},
		stdout:   text(`[]`),
		requests: []string{"GET /v1/networks"},
	}, {
		name:   "network show by short name",
		args:   []string{"network", "show", "blue"},
		routes: map[string]answer{"GET /v1/networks?fq_name=default-domain%3Adefault-project%3Ablue": ok(netBlue)},
		stdout: text(
			"Name:    blue",
			"FQ name: default-domain:default-project:blue",
			"UUID:    "+blueUUID,
			"Kind:    virtual",
			"VNI:     4097",
			"MTU:     -",
			"Labels:  env=prod,team=core",
			"Created: 2026-01-02T03:04:05Z",
			"Updated: -",
			"Subnets:",
			"  CIDR          GATEWAY    BLOCK_PREFIX",
			"  10.0.0.0/24   10.0.0.1   26",
			"  fd00:1::/64   -          -",
		),
		requests: []string{"GET /v1/networks?fq_name=default-domain%3Adefault-project%3Ablue"},
	}, {
		name:     "network show by uuid, json",
		args:     []string{"network", "show", redUUID, "-o", "json"},
		routes:   map[string]answer{"GET /v1/networks/" + redUUID: ok(`{"uuid":"` + redUUID + `","fq_name":"acme:web:red"}`)},
		stdout:   text(`{`, `  "uuid": "`+redUUID+`",`, `  "fq_name": "acme:web:red"`, `}`),
		requests: []string{"GET /v1/networks/" + redUUID},
	}, {
		name:     "network show by fq_name, answered with a list",
		args:     []string{"network", "show", "acme:web:red", "--project", "ignored:here", "-o", "json"},
		routes:   map[string]answer{"GET /v1/networks?fq_name=acme%3Aweb%3Ared": ok(`{"kind":"network","revision":3,"items":[{"fq_name":"acme:web:red"}]}`)},
		stdout:   text(`{`, `  "fq_name": "acme:web:red"`, `}`),
		requests: []string{"GET /v1/networks?fq_name=acme%3Aweb%3Ared"},
	}, {
		name:     "network show: not found",
		args:     []string{"network", "show", "green", "--project", "acme:web"},
		routes:   map[string]answer{"GET /v1/networks?fq_name=acme%3Aweb%3Agreen": {404, `{"error":"network acme:web:green not found"}`}},
		code:     1,
		stderr:   text("weftctl: network acme:web:green not found"),
		requests: []string{"GET /v1/networks?fq_name=acme%3Aweb%3Agreen"},
	}, {
		name:     "network show: controller answers garbage",
		args:     []string{"network", "show", "blue"},
		routes:   map[string]answer{"GET /v1/networks?fq_name=default-domain%3Adefault-project%3Ablue": {502, "<html>bad gateway</html>"}},
		code:     1,
		stderr:   text("weftctl: HTTP 502 Bad Gateway: <html>bad gateway</html>"),
		requests: []string{"GET /v1/networks?fq_name=default-domain%3Adefault-project%3Ablue"},
	}, {
		name: "network delete by name",
		args: []string{"network", "delete", "blue"},
		routes: map[string]answer{
			"GET /v1/networks?fq_name=default-domain%3Adefault-project%3Ablue": ok(netBlue),
			"DELETE /v1/networks/" + blueUUID:                                  {http.StatusNoContent, ""},
		},
		stdout:   text("network default-domain:default-project:blue deleted (uuid " + blueUUID + ")"),
		requests: []string{"GET /v1/networks?fq_name=default-domain%3Adefault-project%3Ablue", "DELETE /v1/networks/" + blueUUID},
	}, {
		name: "network delete: in use",
		args: []string{"network", "delete", blueUUID},
		routes: map[string]answer{
			"GET /v1/networks/" + blueUUID:    ok(netBlue),
			"DELETE /v1/networks/" + blueUUID: {409, `{"error":"network default-domain:default-project:blue has 2 ports"}`},
		},
		code:     1,
		stderr:   text("weftctl: network default-domain:default-project:blue has 2 ports"),
		requests: []string{"GET /v1/networks/" + blueUUID, "DELETE /v1/networks/" + blueUUID},
	}, {
		name:   "ip allocate",
		args:   []string{"ip", "allocate", "blue", "--owner", "c1", "--family", "dual", "--node", "agent-1", "--label", "app=web", "--label", "tier=front=end"},
		routes: map[string]answer{"POST /v1/ipam/allocate": ok(`{"reservations":[` + resBlue5 + `,` + resBlue6 + `]}`)},
		stdout: text(
			"NETWORK                               ADDRESS     OWNER   NODE",
			"default-domain:default-project:blue   10.0.0.5    c1      agent-1",
			"default-domain:default-project:blue   fd00:1::5   c1      -",
		),
		requests: []string{`POST /v1/ipam/allocate {"network":"default-domain:default-project:blue","owner":"c1","family":"dual","node":"agent-1","labels":{"app":"web","tier":"front=end"}}`},
	}, {
		name:     "ip allocate static, json",
		args:     []string{"-o", "json", "ip", "allocate", "--ip", "10.0.0.5", "--owner=c1", blueUUID},
		routes:   map[string]answer{"POST /v1/ipam/allocate": ok(`{"reservations":[{"name":"10.0.0.5","network":"n","address":"10.0.0.5","owner":"c1"}]}`)},
		stdout:   text(`[`, `  {`, `    "kind": "",`, `    "name": "10.0.0.5",`, `    "network": "n",`, `    "address": "10.0.0.5",`, `    "owner": "c1"`, `  }`, `]`),
		requests: []string{`POST /v1/ipam/allocate {"network":"` + blueUUID + `","owner":"c1","ip":"10.0.0.5"}`},
	}, {
		name:     "ip allocate: exhausted",
		args:     []string{"ip", "allocate", "acme:web:red", "--owner", "c1"},
		routes:   map[string]answer{"POST /v1/ipam/allocate": {409, `{"error":"no free address in 192.168.0.0/16","field":"network"}`}},
		code:     1,
		stderr:   text("weftctl: field network: no free address in 192.168.0.0/16"),
		requests: []string{`POST /v1/ipam/allocate {"network":"acme:web:red","owner":"c1"}`},
	}, {
		name:   "ip allocate: no owner",
		args:   []string{"ip", "allocate", "blue"},
		code:   2,
		stderr: text("weftctl: --owner is required", "Run 'weftctl ip allocate --help' for usage."),
	}, {
		name:   "ip allocate: bad label",
		args:   []string{"ip", "allocate", "blue", "--owner", "c1", "--label", "novalue"},
		code:   2,
		stderr: text(`weftctl: --label "novalue": want KEY=VALUE`, "Run 'weftctl ip allocate --help' for usage."),
	}, {
		name:   "ip allocate: bad family",
		args:   []string{"ip", "allocate", "blue", "--owner", "c1", "--family", "ipv5"},
		code:   2,
		stderr: text(`weftctl: --family "ipv5": want ipv4, ipv6 or dual`, "Run 'weftctl ip allocate --help' for usage."),
	}, {
		name:     "ip release by address",
		args:     []string{"ip", "release", "10.0.0.5", "--network", "blue"},
		routes:   map[string]answer{"POST /v1/ipam/release": ok(`{"released":[` + resBlue5 + `]}`)},
		stdout:   text("NETWORK                               ADDRESS    OWNER   NODE", "default-domain:default-project:blue   10.0.0.5   c1      agent-1"),
		requests: []string{`POST /v1/ipam/release {"network":"default-domain:default-project:blue","ip":"10.0.0.5"}`},
	}, {
		name:     "ip release by owner",
		args:     []string{"ip", "release", "--owner", "c1"},
		routes:   map[string]answer{"POST /v1/ipam/release": ok(`{"released":[]}`)},
		stdout:   text("NETWORK   ADDRESS   OWNER   NODE"),
		requests: []string{`POST /v1/ipam/release {"owner":"c1"}`},
	}, {
		name:     "ip release by owner in a network, json",
		args:     []string{"ip", "release", "--owner", "c1", "--network", "acme:web:red", "-o", "json"},
		routes:   map[string]answer{"POST /v1/ipam/release": ok(`{}`)},
		stdout:   text(`[]`),
		requests: []string{`POST /v1/ipam/release {"network":"acme:web:red","owner":"c1"}`},
	}, {
		name:   "ip release: address without network",
		args:   []string{"ip", "release", "10.0.0.5"},
		code:   2,
		stderr: text("weftctl: releasing address 10.0.0.5 needs --network", "Run 'weftctl ip release --help' for usage."),
	}, {
		name:   "ip release: nothing",
		args:   []string{"ip", "release", "--network", "blue"},
		code:   2,
		stderr: text("weftctl: give an ADDR with --network, or --owner", "Run 'weftctl ip release --help' for usage."),
	}, {
		name:   "ip list in a network",
		args:   []string{"ip", "list", "--network", "blue"},
		routes: map[string]answer{"GET /v1/ip-reservations?network=default-domain%3Adefault-project%3Ablue": ok(`{"kind":"ip_reservation","revision":5,"items":[` + resBlue5 + `,` + resBlue6 + `]}`)},
		stdout: text(
			"NETWORK                               ADDRESS     OWNER   NODE",
			"default-domain:default-project:blue   10.0.0.5    c1      agent-1",
			"default-domain:default-project:blue   fd00:1::5   c1      -",
		),
		requests: []string{"GET /v1/ip-reservations?network=default-domain%3Adefault-project%3Ablue"},
	}, {
		name:     "ip list, json",
		args:     []string{"ip", "list", "-o", "json"},
		routes:   map[string]answer{"GET /v1/ip-reservations": ok(`{"kind":"ip_reservation","revision":5,"items":[{"address":"10.0.0.5"}]}`)},
		stdout:   text(`[`, `  {`, `    "address": "10.0.0.5"`, `  }`, `]`),
		requests: []string{"GET /v1/ip-reservations"},
	}, {
		name: "port list",
		args: []string{"port", "list"},
		routes: map[string]answer{"GET /v1/ports": ok(`{"kind":"port","revision":5,"items":[` +
			`{"kind":"port","name":"web.1-eth0","network":"default-domain:default-project:blue","node":"agent-1","container_id":"6d1d0c1e-aaaa","ips":[{"address":"10.0.0.5"},{"address":"fd00:1::5"}]},` +
			`{"kind":"port","name":"db.1-eth0","network":"acme:web:red"}]}`)},
		stdout: text(
			"NAME         NETWORK                               NODE      CONTAINER       IPS",
			"web.1-eth0   default-domain:default-project:blue   agent-1   6d1d0c1e-aaaa   10.0.0.5,fd00:1::5",
			"db.1-eth0    acme:web:red                          -         -               -",
		),
		requests: []string{"GET /v1/ports"},
	}, {
		name:     "port list in a network by uuid",
		args:     []string{"port", "list", "--network", redUUID},
		routes:   map[string]answer{"GET /v1/ports?network=" + redUUID: ok(`{"kind":"port","revision":5,"items":[]}`)},
		stdout:   text("NAME   NETWORK   NODE   CONTAINER   IPS"),
		requests: []string{"GET /v1/ports?network=" + redUUID},
	}, {
		name: "node list",
		args: []string{"node", "list"},
		routes: map[string]answer{"GET /v1/nodes": ok(`{"kind":"node","revision":5,"items":[` +
			`{"kind":"node","name":"agent-1","underlay_ip":"198.18.0.11","vtep_ip":"44.128.0.1","vtep_mac":"70:b3:d5:80:00:01","status":"ready"},` +
			`{"kind":"node","name":"agent-2","underlay_ip":"198.18.0.12"}]}`)},
		stdout: text(
			"NAME      UNDERLAY      VTEP_IP      VTEP_MAC            STATUS",
			"agent-1   198.18.0.11   44.128.0.1   70:b3:d5:80:00:01   ready",
			"agent-2   198.18.0.12   -            -                   -",
		),
		requests: []string{"GET /v1/nodes"},
	}, {
		name:     "version",
		args:     []string{"version"},
		routes:   map[string]answer{"GET /v1/version": ok(`{"version":"v0.3.0","go_version":"go1.26.8"}`)},
		stdout:   text("Client: v9.9.9-test (go1.test)", "Server: v0.3.0 (go1.26.8)"),
		requests: []string{"GET /v1/version"},
	}, {
		name:     "version, json",
		args:     []string{"version", "-o", "json"},
		routes:   map[string]answer{"GET /v1/version": ok(`{"version":"v0.3.0","go_version":"go1.26.8"}`)},
		stdout:   text(`{`, `  "client": {`, `    "version": "v9.9.9-test",`, `    "go_version": "go1.test"`, `  },`, `  "server": {`, `    "version": "v0.3.0",`, `    "go_version": "go1.26.8"`, `  }`, `}`),
		requests: []string{"GET /v1/version"},
	}, {
		name:     "version, server fails",
		args:     []string{"version"},
		routes:   map[string]answer{"GET /v1/version": {500, `{"error":"etcd unavailable"}`}},
		code:     1,
		stdout:   text("Client: v9.9.9-test (go1.test)"),
		stderr:   text("weftctl: etcd unavailable"),
		requests: []string{"GET /v1/version"},
	}, {
		name:   "overlay state",
		args:   []string{"overlay", "state"},
		routes: map[string]answer{"GET /overlay-master/state": ok(overlayState)},
		stdout: text(
			"AGENT        OVERLAY   VTEP                         VTEP_MAC            SUBNET        MESOS_HALF            DOCKER_HALF           STATUS",
			"198.18.0.1   dcos      44.128.0.1/20,fd01:a::1/64   70:b3:d5:80:00:01   9.0.0.0/24    m-dcos 9.0.0.0/25     d-dcos 9.0.0.128/25   STATUS_OK",
			"198.18.0.1   dcos6     44.128.0.1/20,fd01:a::1/64   70:b3:d5:80:00:01   fd01:b::/80   m-dcos6 fd01:b::/81   -                     STATUS_FAILED: docker engine: connection refused"),
		requests: []string{"GET /overlay-master/state"},
	}, {
		name:     "overlay state, json: the body as the controller sent it",
		args:     []string{"-o", "json", "overlay", "state"},
		routes:   map[string]answer{"GET /overlay-master/state": ok(overlayStateEmpty)},
		stdout:   text(`{`, `  "agents": [],`, `  "network": {`, `    "overlays": [`, `      {`, `        "name": "dcos",`, `        "prefix": 24,`, `        "subnet": "9.0.0.0/8"`, `      }`, `    ],`, `    "vtep_mac_oui": "70:B3:D5:00:00:00",`, `    "vtep_subnet": "44.128.0.0/20"`, `  }`, `}`),
		requests: []string{"GET /overlay-master/state"},
	}, {
		name:     "overlay state, no overlay configured",
		args:     []string{"overlay", "state"},
		routes:   map[string]answer{"GET /overlay-master/state": {404, `{"error":"no overlay is configured"}`}},
		code:     1,
		stderr:   text("weftctl: no overlay is configured"),
		requests: []string{"GET /overlay-master/state"},
	}, {
		name:   "overlay usage",
		args:   []string{"overlay", "usage"},
		routes: map[string]answer{"GET /v1/overlays": ok(overlayUsage)},
		stdout: text(
			"OVERLAY           SUBNET        USED             SUBNET6     USED6            EXHAUSTED   FAILED_NODES",
			"dcos              9.0.0.0/8     3/65536 of /24   -           -                false       -",
			"tiny (disabled)   10.9.0.0/23   2/2 of /24       fd02::/64   1/65536 of /80   true        node3: no free /24 subnet; node4: no free /24 subnet"),
		requests: []string{"GET /v1/overlays"},
	}, {
		name:   "overlay usage, json: every field the controller sent, in its order",
		args:   []string{"overlay", "usage", "-o", "json"},
		routes: map[string]answer{"GET /v1/overlays": ok(`{"overlays":[{"name":"dcos","network":"default-domain:default-project:dcos","enabled":true,"subnet":"9.0.0.0/8","prefix":24,"subnets":65536,"subnets_used":3,"subnets6_used":0,"exhausted":false}]}`)},
		stdout: text(`{`, `  "overlays": [`, `    {`, `      "name": "dcos",`, `      "network": "default-domain:default-project:dcos",`, `      "enabled": true,`,
			`      "subnet": "9.0.0.0/8",`, `      "prefix": 24,`, `      "subnets": 65536,`, `      "subnets_used": 3,`, `      "subnets6_used": 0,`, `      "exhausted": false`, `    }`, `  ]`, `}`),
		requests: []string{"GET /v1/overlays"},
	}, {
		name:     "overlay delete-agents prints the new state",
		args:     []string{"overlay", "delete-agents", "198.18.0.2", "198.18.0.3"},
		routes:   map[string]answer{"POST /overlay-master/agents/delete": ok(overlayStateEmpty)},
		stdout:   text("AGENT   OVERLAY   VTEP   VTEP_MAC   SUBNET   MESOS_HALF   DOCKER_HALF   STATUS"),
		requests: []string{`POST /overlay-master/agents/delete {"agents":["198.18.0.2","198.18.0.3"]}`},
	}, {
		name:     "overlay delete-agents, refused",
		args:     []string{"overlay", "delete-agents", "nope"},
		routes:   map[string]answer{"POST /overlay-master/agents/delete": {400, `{"error":"\"nope\" is not an IPv4 address","field":"agents[0]"}`}},
		code:     1,
		stderr:   text(`weftctl: field agents[0]: "nope" is not an IPv4 address`),
		requests: []string{`POST /overlay-master/agents/delete {"agents":["nope"]}`},
	}, {
		name:   "overlay delete-agents without an address",
		args:   []string{"overlay", "delete-agents"},
		code:   2,
		stderr: text(`weftctl: overlay delete-agents: want at least 1 argument(s), got 0`, "Run 'weftctl overlay delete-agents --help' for usage."),
	}, {
		name:   "unknown command",
		args:   []string{"subnet", "list"},
		code:   2,
		stderr: text(`weftctl: unknown command "subnet"`, "Run 'weftctl --help' for usage."),
	}, {
		name:   "unknown subcommand",
		args:   []string{"network", "rename"},
		code:   2,
		stderr: text(`weftctl: unknown command "network rename"`, "Run 'weftctl network --help' for usage."),
	}, {
		name:   "unknown flag",
		args:   []string{"node", "list", "--all"},
		code:   2,
		stderr: text(`weftctl: flag provided but not defined: -all`, "Run 'weftctl node list --help' for usage."),
	}, {
		name:   "bad output format",
		args:   []string{"-o", "yaml", "node", "list"},
		code:   2,
		stderr: text(`weftctl: -o "yaml": want table or json`, "Run 'weftctl node list --help' for usage."),
	}, {
		name:   "extra argument",
		args:   []string{"node", "list", "agent-1"},
		code:   2,
		stderr: text(`weftctl: node list: takes no arguments, got 1`, "Run 'weftctl node list --help' for usage."),
	}, {
		name:   "bad --project",
		args:   []string{"network", "show", "blue", "--project", "acme"},
		code:   2,
		stderr: text(`weftctl: --project "acme": want DOMAIN:PROJECT`, "Run 'weftctl network show --help' for usage."),
	}, {
		name:     "-- ends the flags",
		args:     []string{"network", "show", "--", "-odd"},
		routes:   map[string]answer{"GET /v1/networks?fq_name=default-domain%3Adefault-project%3A-odd": ok(`{"name":"-odd"}`)},
		stdout:   text("Name:    -odd", "FQ name: -", "UUID:    -", "Kind:    -", "VNI:     -", "MTU:     -", "Labels:  -", "Created: -", "Updated: -", "Subnets: -"),
		requests: []string{"GET /v1/networks?fq_name=default-domain%3Adefault-project%3A-odd"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeController(t, tt.routes)
			env := func(k string) string {
				if k == "WEFT_SERVER" {
					return f.srv.URL
				}
				return ""
			}
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tt.args, &stdout, &stderr, env)
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			if got := stdout.String(); got != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", got, tt.stdout)
			}
			if got := stderr.String(); got != tt.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", got, tt.stderr)
			}
			if got := f.requests(); !reflect.DeepEqual(got, tt.requests) {
				t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.requests, "\n"))
			}
		})
	}
}

func TestServerSelection(t *testing.T) {
	used := func(t *testing.T) (*fakeController, func() int) {
		f := newFakeController(t, map[string]answer{"GET /v1/nodes": ok(`{"items":[]}`)})
		return f, func() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.seen) }
	}
	t.Run("--server before the command wins over WEFT_SERVER", func(t *testing.T) {
		f, n := used(t)
		env := func(string) string { return "http://127.0.0.1:1" }
		if code := Run(context.Background(), []string{"--server", f.srv.URL, "node", "list"}, io.Discard, io.Discard, env); code != 0 || n() != 1 {
			t.Errorf("exit %d, %d requests; want 0, 1", code, n())
		}
	})
	t.Run("--server after the command", func(t *testing.T) {
		f, n := used(t)
		if code := Run(context.Background(), []string{"node", "list", "--server=" + f.srv.URL}, io.Discard, io.Discard, nil); code != 0 || n() != 1 {
			t.Errorf("exit %d, %d requests; want 0, 1", code, n())
		}
	})
	t.Run("default, and WEFT_SERVER", func(t *testing.T) {
		for env, want := range map[string]string{"": DefaultServer, "http://weft.example:9000": "http://weft.example:9000"} {
			var stdout bytes.Buffer
			Run(context.Background(), []string{"--help"}, &stdout, io.Discard, func(k string) string {
				if k == "WEFT_SERVER" {
					return env
				}
				return ""
			})
			if !strings.Contains(stdout.String(), "(default "+want+")") {
				t.Errorf("WEFT_SERVER=%q: usage does not show default server %s:\n%s", env, want, stdout.String())
			}
		}
	})
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"network", "--help"}, {"network", "-h"}, {"help", "network"},
		{"network", "create", "--help"}, {"network", "create", "blue", "-h"}, {"help", "network", "create"},
		{"ip", "release", "--help"}, {"version", "--help"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Run(context.Background(), args, &stdout, &stderr, nil); code != 0 || stdout.Len() == 0 || stderr.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %d bytes, stderr %q; want 0, usage, nothing", args, code, stdout.Len(), stderr.String())
		}
	}
	// Missing command: the usage goes to stderr, exit 2.
	for _, args := range [][]string{{}, {"network"}, {"-o", "json"}} {
		var stdout, stderr bytes.Buffer
		if code := Run(context.Background(), args, &stdout, &stderr, nil); code != 2 || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "Usage: weftctl") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, usage", args, code, stdout.String(), stderr.String())
		}
	}
}

// TestHelpMatchesCommands checks that the usage texts list every command
// and every flag the code defines.
func TestHelpMatchesCommands(t *testing.T) {
	run := func(args ...string) string {
		var stdout bytes.Buffer
		if code := Run(context.Background(), args, &stdout, io.Discard, nil); code != 0 {
			t.Fatalf("%q: exit %d", args, code)
		}
		return stdout.String()
	}
	top := run("--help")
	for _, flagName := range []string{"--server URL", "-o FORMAT"} {
		if !strings.Contains(top, flagName) {
			t.Errorf("weftctl --help lacks %q", flagName)
		}
	}
	for i := range commands {
		cmd := &commands[i]
		line := "weftctl " + usageLine(cmd) + "\n"
		if !strings.Contains(top, line) {
			t.Errorf("weftctl --help lacks %q", line)
		}
		if group, _, ok := strings.Cut(cmd.path, " "); ok {
			if g := run(group, "--help"); !strings.Contains(g, line) {
				t.Errorf("weftctl %s --help lacks %q", group, line)
			}
		}
		help := run(append(strings.Fields(cmd.path), "--help")...)
		if !strings.HasPrefix(help, "Usage: "+line) {
			t.Errorf("weftctl %s --help starts %q", cmd.path, help)
		}
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		cmd.setup(fs)
		fs.VisitAll(func(f *flag.Flag) {
			name, _ := flag.UnquoteUsage(f)
			want := "  --" + f.Name + " " + name + " "
			if !strings.Contains(help, want) {
				t.Errorf("weftctl %s --help lacks %q", cmd.path, want)
			}
			// Every flag is in the synopsis.
			if !strings.Contains(cmd.synopsis, "--"+f.Name) {
				t.Errorf("synopsis of %s lacks --%s", cmd.path, f.Name)
			}
		})
	}
}

func TestNetworkUsageGolden(t *testing.T) {
	var stdout bytes.Buffer
	Run(context.Background(), []string{"network", "--help"}, &stdout, io.Discard, nil)
	want := text(
		"Usage: weftctl network COMMAND [ARGS] [FLAGS]",
		"",
		"Commands:",
		"  weftctl network create NAME --subnet CIDR [--subnet CIDR]... [--gateway ADDR]... [--block-prefix N]... [--project FQ] [--kind virtual|overlay] [--vni N]",
		"        Create a network. NAME may be DOMAIN:PROJECT:NAME; the i-th --gateway and --block-prefix apply to the i-th --subnet.",
		"  weftctl network list",
		"        List the networks.",
		"  weftctl network show NAME|FQ|UUID [--project FQ]",
		"        Show one network.",
		"  weftctl network delete NAME|FQ|UUID [--project FQ]",
		"        Delete one network.",
		"",
		"Run 'weftctl network COMMAND --help' for the flags of a command,",
		"'weftctl --help' for the global flags.",
	)
	if got := stdout.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		subnets []string
		owner   string
		err     bool
	}{
		{args: nil, pos: nil},
		{args: []string{"blue"}, pos: []string{"blue"}},
		{args: []string{"blue", "--subnet", "a", "--subnet=b"}, pos: []string{"blue"}, subnets: []string{"a", "b"}},
		{args: []string{"--subnet", "a", "blue", "-subnet", "b", "red"}, pos: []string{"blue", "red"}, subnets: []string{"a", "b"}},
		{args: []string{"blue", "--owner", "x", "--", "--subnet", "c"}, pos: []string{"blue", "--subnet", "c"}, owner: "x"},
		{args: []string{"--", "-x"}, pos: []string{"-x"}},
		{args: []string{"blue", "-"}, pos: []string{"blue", "-"}},
		{args: []string{"blue", "--owner"}, err: true},
		{args: []string{"blue", "--nope"}, err: true},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var subnets stringList
		fs.Var(&subnets, "subnet", "")
		owner := fs.String("owner", "", "")
		pos, err := parseInterspersed(fs, tt.args)
		if (err != nil) != tt.err {
			t.Errorf("%q: error %v, want error %v", tt.args, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if !reflect.DeepEqual(pos, tt.pos) || !reflect.DeepEqual([]string(subnets), tt.subnets) || *owner != tt.owner {
			t.Errorf("%q: positionals %q subnets %q owner %q; want %q %q %q", tt.args, pos, subnets, *owner, tt.pos, tt.subnets, tt.owner)
		}
	}
}

func TestNetworkRef(t *testing.T) {
	tests := []struct {
		ref, project, want string
		err                bool
	}{
		{"blue", "default-domain:default-project", "default-domain:default-project:blue", false},
		{"blue", "acme:web", "acme:web:blue", false},
		{"a:b:blue", "acme:web", "a:b:blue", false},
		{blueUUID, "acme:web", blueUUID, false},
		{strings.ToUpper(blueUUID), "acme:web", strings.ToUpper(blueUUID), false},
		{"a:blue", "acme:web", "", true},
		{"a::blue", "acme:web", "", true},
		{"blue", "acme", "", true},
		{"", "acme:web", "", true},
	}
	for _, tt := range tests {
		got, err := networkRef("x", tt.ref, tt.project)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("networkRef(%q, %q) = %q, %v; want %q, error %v", tt.ref, tt.project, got, err, tt.want, tt.err)
		}
	}
}
