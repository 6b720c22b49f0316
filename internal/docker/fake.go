package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Fake is an in-memory Engine for tests. It answers like Docker 20.10 in
// the cases Weft meets: a duplicate name is a 409, an overlapping subnet a
// 403, a missing network a 404; SetDown makes every call fail with
// ErrUnavailable, as when the engine stopped. IDs are deterministic.
type Fake struct {
	mu    sync.Mutex
	down  bool
	nets  map[string]Network // by name
	seq   int
	fails map[string]error
	calls []string
}

// NewFake returns an empty, running fake engine.
func NewFake() *Fake {
	return &Fake{nets: map[string]Network{}, fails: map[string]error{}}
}

// SetDown makes the fake engine stop (true) or run again (false). Its
// networks survive, as they do in a real engine's data root.
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Fail makes every later call of op ("Ping", "NetworkInspect",
// "NetworkCreate", "NetworkRemove") return err; a nil err clears it.
func (f *Fake) Fail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fails, op)
		return
	}
	f.fails[op] = err
}

// Add puts a network into the fake as it is, without checks (for example
// one made by hand with a wrong subnet).
func (f *Fake) Add(n Network) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n.ID == "" {
		n.ID = f.nextID(n.Name)
	}
	if n.Driver == "" {
		n.Driver = "bridge"
	}
	f.nets[n.Name] = cloneNetwork(n)
}

// Calls returns the calls made so far, such as "NetworkCreate dcos".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Networks returns the networks, sorted by name.
func (f *Fake) Networks() []Network {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Network, 0, len(f.nets))
	for _, name := range slices.Sorted(maps.Keys(f.nets)) {
		out = append(out, cloneNetwork(f.nets[name]))
	}
	return out
}

// Dump returns one line per network, sorted by name, for golden tests:
//
//	dcos bridge=d-dcos subnets=9.0.1.128/25 mtu=1420 ipv6=false options=k=v,... labels=k=v,...
func (f *Fake) Dump() string {
	var b strings.Builder
	for _, n := range f.Networks() {
		fmt.Fprintf(&b, "%s bridge=%s subnets=%s mtu=%d ipv6=%t options=%s labels=%s\n",
			n.Name, orDash(n.BridgeName()), joinPrefixes(n.Subnets), n.MTU(), n.EnableIPv6,
			joinMap(n.Options), joinMap(n.Labels))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinMap(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func cloneNetwork(n Network) Network {
	n.Subnets = slices.Clone(n.Subnets)
	n.Options = maps.Clone(n.Options)
	n.Labels = maps.Clone(n.Labels)
	if n.Options == nil {
		n.Options = map[string]string{}
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	return n
}

func (f *Fake) nextID(name string) string {
	f.seq++
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", name, f.seq))
	return hex.EncodeToString(sum[:])
}

// enter records a call and returns the error it must fail with, if any.
// The caller holds f.mu.
func (f *Fake) enter(op, arg string) error {
	f.calls = append(f.calls, strings.TrimSpace(op+" "+arg))
	if f.down {
		return fmt.Errorf("%w: fake engine is down", ErrUnavailable)
	}
	return f.fails[op]
}

// Ping fails with ErrUnavailable while the fake is down.
func (f *Fake) Ping(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.enter("Ping", "")
}

func (f *Fake) lookup(name string) (Network, bool) {
	if n, ok := f.nets[name]; ok {
		return n, true
	}
	for _, n := range f.nets {
		if n.ID == name {
			return n, true
		}
	}
	return Network{}, false
}

// NetworkInspect returns the network of that name or full ID.
func (f *Fake) NetworkInspect(ctx context.Context, name string) (Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Network{}, err
	}
	if err := f.enter("NetworkInspect", name); err != nil {
		return Network{}, err
	}
	n, ok := f.lookup(name)
	if !ok {
		return Network{}, &APIError{Method: http.MethodGet, Path: "/networks/" + name, StatusCode: http.StatusNotFound,
			Message: "network " + name + " not found"}
	}
	return cloneNetwork(n), nil
}

// NetworkCreate adds the network, refusing a duplicate name (409) or a
// subnet overlapping another network's (403), like the engine.
func (f *Fake) NetworkCreate(ctx context.Context, spec NetworkSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := f.enter("NetworkCreate", spec.Name); err != nil {
		return "", err
	}
	if err := spec.Validate(); err != nil {
		return "", err
	}
	const path = "/networks/create"
	if _, ok := f.nets[spec.Name]; ok {
		return "", &APIError{Method: http.MethodPost, Path: path, StatusCode: http.StatusConflict,
			Message: "network with name " + spec.Name + " already exists"}
	}
	for _, other := range f.nets {
		for _, p := range other.Subnets {
			for _, q := range spec.subnets() {
				if p.Overlaps(q) {
					return "", &APIError{Method: http.MethodPost, Path: path, StatusCode: http.StatusForbidden,
						Message: "Pool overlaps with other one on this address space"}
				}
			}
		}
	}
	n := Network{
		ID: f.nextID(spec.Name), Name: spec.Name, Driver: "bridge",
		Subnets: spec.subnets(), Options: spec.Options(), Labels: maps.Clone(spec.Labels),
		EnableIPv6: spec.Subnet6.IsValid(),
	}
	f.nets[spec.Name] = cloneNetwork(n)
	return n.ID, nil
}

// NetworkRemove deletes the network; a missing one is fine.
func (f *Fake) NetworkRemove(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.enter("NetworkRemove", name); err != nil {
		return err
	}
	if n, ok := f.lookup(name); ok {
		delete(f.nets, n.Name)
	}
	return nil
}

var _ Engine = (*Fake)(nil)
