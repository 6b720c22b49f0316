package agent

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weft-sdn/weft/internal/api"
)

// The Contrail vRouter agent's port API (port-IPC, :9091), as existing
// tooling and the Contrail CNI use it: see shared/reference/contrail-mesos.md
// §6. The agent answers it from its journal: a VM is a container (uuid and
// name are the container id), a VMI is a port (its uuid is the port's).

const (
	contrailContentType = "application/json; charset=UTF-8"
	contrailAuthor      = "weft-agent"
	// contrailNoVLAN is the vRouter's "no VLAN" value.
	contrailNoVLAN = 0xFFFF
)

// contrailPort is the object of GET /vm, /vm-cfg and /port: the union of
// the vRouter's config (/vm-cfg) and port (/vm, /port) shapes.
type contrailPort struct {
	ID            string   `json:"id"`
	VMUUID        string   `json:"vm-uuid"`
	InstanceID    string   `json:"instance-id"`
	VMName        string   `json:"vm-name"`
	DisplayName   string   `json:"display-name,omitempty"`
	VNID          string   `json:"vn-id"`
	VNName        string   `json:"vn-name,omitempty"`
	VMProjectID   string   `json:"vm-project-id"`
	MACAddress    string   `json:"mac-address"`
	SystemName    string   `json:"system-name"`
	SubInterface  bool     `json:"sub-interface"`
	VLANID        int      `json:"vlan-id"`
	RxVLANID      int      `json:"rx-vlan-id"`
	TxVLANID      int      `json:"tx-vlan-id"`
	VhostuserMode int      `json:"vhostuser-mode"`
	IPAddress     string   `json:"ip-address"`
	Plen          int      `json:"plen"`
	DNSServer     string   `json:"dns-server,omitempty"`
	Gateway       string   `json:"gateway,omitempty"`
	V6IPAddress   string   `json:"v6-ip-address,omitempty"`
	V6Plen        int      `json:"v6-plen,omitempty"`
	V6DNSServer   string   `json:"v6-dns-server,omitempty"`
	V6Gateway     string   `json:"v6-gateway,omitempty"`
	Annotations   []string `json:"annotations"`
	Author        string   `json:"author"`
	Time          string   `json:"time"`
}

// PortAPIHandler serves the Contrail-style port API.
func (a *Agent) PortAPIHandler() http.Handler {
	return http.HandlerFunc(a.servePortAPI)
}

func (a *Agent) servePortAPI(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	route := r.Method + " " + parts[0]
	switch {
	case route == "GET vm-cfg" && len(parts) == 2:
		a.contrailList(w, func(e *Entry) bool { return vmNameOf(e) == parts[1] })
	case route == "GET vm" && (len(parts) == 2 || len(parts) == 3):
		a.contrailList(w, func(e *Entry) bool {
			return vmUUIDOf(e) == parts[1] && (len(parts) == 2 || e.PortUUID == parts[2])
		})
	case route == "GET port" && len(parts) == 2:
		a.contrailGetPort(w, parts[1])
	case route == "POST port" && len(parts) == 1:
		a.contrailPostPort(w, r)
	case route == "DELETE port" && len(parts) == 2:
		a.contrailDeleteExternal(w, func(e *Entry) bool { return e.PortUUID == parts[1] })
	case route == "POST vm" && len(parts) == 1:
		a.contrailPostVM(w, r)
	case route == "DELETE vm" && len(parts) == 2:
		a.contrailDeleteExternal(w, func(e *Entry) bool { return vmUUIDOf(e) == parts[1] })
	case (route == "PUT enable-port" || route == "PUT disable-port") && len(parts) == 2,
		route == "POST syncports" && len(parts) == 1:
		// Link state and stale-port sweeps belong to the data plane and
		// the journal here; accepted for compatibility.
		writeContrail(w, http.StatusOK, struct{}{})
	default:
		writeContrailError(w, http.StatusNotFound, "Unknown Request")
	}
}

func writeContrail(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", contrailContentType)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeContrailError(w http.ResponseWriter, code int, msg string) {
	writeContrail(w, code, map[string]string{"error": msg})
}

func writeContrailNotFound(w http.ResponseWriter) {
	writeContrailError(w, http.StatusNotFound, "{ Not Found }")
}

// vmUUIDOf and vmNameOf are the Contrail VM identity of an entry: the
// container id, unless the port API said otherwise.
func vmUUIDOf(e *Entry) string {
	if e.Contrail != nil && e.Contrail.VMUUID != "" {
		return e.Contrail.VMUUID
	}
	return e.ContainerID
}

func vmNameOf(e *Entry) string {
	if e.Contrail != nil && e.Contrail.VMName != "" {
		return e.Contrail.VMName
	}
	return e.ContainerID
}

// contrailVisible lists the entries the port API shows: attached ones,
// ordered by VM and interface.
func (a *Agent) contrailVisible() []*Entry {
	var out []*Entry
	for _, e := range a.journal.Entries() {
		if e.State == StateAttached {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(x, y *Entry) int {
		return cmp.Or(strings.Compare(vmUUIDOf(x), vmUUIDOf(y)), strings.Compare(x.IfName, y.IfName), strings.Compare(x.PortUUID, y.PortUUID))
	})
	return out
}

// contrailList answers an array of the matching entries, or 404.
func (a *Agent) contrailList(w http.ResponseWriter, match func(*Entry) bool) {
	all := a.contrailVisible()
	var out []contrailPort
	for _, e := range all {
		if match(e) {
			out = append(out, a.contrailView(e, all))
		}
	}
	if len(out) == 0 {
		writeContrailNotFound(w)
		return
	}
	writeContrail(w, http.StatusOK, out)
}

func (a *Agent) contrailGetPort(w http.ResponseWriter, id string) {
	if !api.IsUUID(id) || strings.ToLower(id) != id {
		writeContrailNotFound(w)
		return
	}
	all := a.contrailVisible()
	for _, e := range all {
		if e.PortUUID == id {
			writeContrail(w, http.StatusOK, a.contrailView(e, all))
			return
		}
	}
	writeContrailNotFound(w)
}

// contrailView is an entry in the vRouter's shape. all are the visible
// entries, for the {index:i/N} annotation among the VM's interfaces.
func (a *Agent) contrailView(e *Entry, all []*Entry) contrailPort {
	vm := vmUUIDOf(e)
	idx, total := 0, 0
	for _, o := range all {
		if vmUUIDOf(o) != vm {
			continue
		}
		if o.Key() == e.Key() {
			idx = total
		}
		total++
	}
	v := contrailPort{
		ID:          e.PortUUID,
		VMUUID:      vm,
		InstanceID:  vm,
		VMName:      vmNameOf(e),
		VNID:        e.NetworkUUID,
		VNName:      e.NetworkFQName,
		VMProjectID: "00000000-0000-0000-0000-000000000000",
		MACAddress:  e.MAC,
		SystemName:  e.HostIf,
		RxVLANID:    contrailNoVLAN,
		TxVLANID:    contrailNoVLAN,
		Author:      contrailAuthor,
		Time:        strconv.FormatInt(e.UpdatedAt.UnixMicro(), 10),
		Annotations: []string{fmt.Sprintf("{index:%d/%d}", idx, total), "{interface:" + e.IfName + "}"},
	}
	if e.IfName == "" {
		v.Annotations = v.Annotations[:1]
	}
	if c := e.Contrail; c != nil {
		v.DisplayName = c.DisplayName
		if c.VMProjectID != "" {
			v.VMProjectID = c.VMProjectID
		}
		if e.External {
			v.RxVLANID, v.TxVLANID = c.RxVLAN, c.TxVLAN
		}
	}
	for _, ip := range e.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			continue
		}
		if p.Addr().Is4() && v.IPAddress == "" {
			v.IPAddress, v.Plen, v.Gateway = p.Addr().String(), p.Bits(), ip.Gateway
			v.DNSServer = a.nameserver(true)
		} else if p.Addr().Is6() && v.V6IPAddress == "" {
			v.V6IPAddress, v.V6Plen, v.V6Gateway = p.Addr().String(), p.Bits(), ip.Gateway
			v.V6DNSServer = a.nameserver(false)
		}
	}
	if v.IPAddress == "" {
		v.IPAddress = "0.0.0.0"
	}
	return v
}

// nameserver is the first configured nameserver of the family.
func (a *Agent) nameserver(v4 bool) string {
	for _, ns := range a.cfg.DNS.Nameservers {
		if addr, err := netip.ParseAddr(ns); err == nil && addr.Unmap().Is4() == v4 {
			return addr.String()
		}
	}
	return ""
}

// readContrailBody reads a bounded request body.
func readContrailBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxLocalBody+1))
	if err != nil || len(b) > maxLocalBody {
		return nil, fmt.Errorf("{ Invalid request body }")
	}
	return b, nil
}

// contrailPostPort registers externally created ports (POST /port): one
// object or an array, all or none. They are journalled as external: shown
// by the port API, never programmed or released by the agent.
func (a *Agent) contrailPostPort(w http.ResponseWriter, r *http.Request) {
	body, err := readContrailBody(r)
	if err != nil {
		writeContrailError(w, http.StatusInternalServerError, err.Error())
		return
	}
	var objs []map[string]json.RawMessage
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err = json.Unmarshal(trimmed, &objs)
	} else {
		var one map[string]json.RawMessage
		err = json.Unmarshal(trimmed, &one)
		objs = append(objs, one)
	}
	if err != nil || len(objs) == 0 {
		writeContrailError(w, http.StatusInternalServerError, "{ Invalid JSON }")
		return
	}
	entries := make([]*Entry, 0, len(objs))
	for _, o := range objs {
		e, err := a.externalPort(o)
		if err != nil {
			writeContrailError(w, http.StatusInternalServerError, err.Error())
			return
		}
		entries = append(entries, e)
	}
	for _, e := range entries {
		if cur, ok := a.findPort(e.PortUUID); ok && !cur.External {
			continue // the agent's own port: nothing to register
		}
		unlock := a.keys.Lock(e.Key())
		if cur, ok := a.journal.Get(e.Key()); ok && cur.Contrail != nil {
			e.Contrail.VMName = cmp.Or(cur.Contrail.VMName, e.Contrail.VMName)
			e.CreatedAt = cur.CreatedAt
		}
		err := a.journal.Put(e)
		unlock()
		if err != nil {
			writeContrailError(w, http.StatusInternalServerError, "{ "+err.Error()+" }")
			return
		}
		a.log.Info("external port registered", "port", e.PortUUID, "vm", vmUUIDOf(e), "system_name", e.HostIf)
	}
	writeContrail(w, http.StatusOK, struct{}{})
}

// findPort finds the entry of a port uuid.
func (a *Agent) findPort(id string) (*Entry, bool) {
	for _, e := range a.journal.Entries() {
		if e.PortUUID == id {
			return e, true
		}
	}
	return nil, false
}

// externalPort validates a posted port object (required fields as the
// vRouter agent requires them) and makes its journal entry.
func (a *Agent) externalPort(o map[string]json.RawMessage) (*Entry, error) {
	missing := func(field string) error { return fmt.Errorf("{ Invalid or missing data for %s }", field) }
	str := func(field string) (string, error) {
		var s string
		if raw, ok := o[field]; !ok || json.Unmarshal(raw, &s) != nil {
			return "", missing(field)
		}
		return s, nil
	}
	num := func(field string) (int, error) {
		var n int
		if raw, ok := o[field]; !ok || json.Unmarshal(raw, &n) != nil {
			return 0, missing(field)
		}
		return n, nil
	}
	ids := map[string]string{}
	for _, f := range []string{"id", "instance-id", "vn-id", "vm-project-id"} {
		s, err := str(f)
		if err != nil {
			return nil, err
		}
		if !api.IsUUID(s) {
			if f == "vn-id" {
				return nil, fmt.Errorf("{ Invalid VN uuid }")
			}
			return nil, missing(f)
		}
		ids[f] = strings.ToLower(s)
	}
	var strs = map[string]string{}
	for _, f := range []string{"display-name", "ip-address", "ip6-address", "system-name", "mac-address"} {
		s, err := str(f)
		if err != nil {
			return nil, err
		}
		strs[f] = s
	}
	nums := map[string]int{}
	for _, f := range []string{"type", "rx-vlan-id", "tx-vlan-id"} {
		n, err := num(f)
		if err != nil {
			return nil, err
		}
		nums[f] = n
	}
	if nums["type"] < 0 || nums["type"] > 2 {
		return nil, missing("type")
	}
	if hw, err := net.ParseMAC(strs["mac-address"]); err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("{ Invalid MAC, Use xx:xx:xx:xx:xx:xx format }")
	}
	if strs["system-name"] == "" {
		return nil, missing("system-name")
	}
	e := &Entry{
		ContainerID: ids["instance-id"],
		NetworkUUID: ids["vn-id"],
		PortUUID:    ids["id"],
		MAC:         strings.ToLower(strs["mac-address"]),
		HostIf:      strs["system-name"],
		State:       StateAttached,
		External:    true,
		Contrail: &ContrailInfo{
			VMUUID:      ids["instance-id"],
			VMProjectID: ids["vm-project-id"],
			DisplayName: strs["display-name"],
			IP6Address:  strs["ip6-address"],
			Type:        nums["type"],
			RxVLAN:      nums["rx-vlan-id"],
			TxVLAN:      nums["tx-vlan-id"],
		},
	}
	if raw, err := json.Marshal(o); err == nil {
		e.Contrail.Port = raw
	}
	n := a.cache.Network(e.NetworkUUID)
	if n != nil {
		e.NetworkFQName = n.FQName
	}
	for _, f := range []string{"ip-address", "ip6-address"} {
		s := strs[f]
		if s == "" || s == "None" || s == "0.0.0.0" || s == "::" {
			continue
		}
		addr, err := api.ParseAddr(s)
		if err != nil || (f == "ip-address") != addr.Is4() {
			return nil, missing(f)
		}
		bits := addr.BitLen()
		var gw string
		if n != nil {
			if sub, g, ok := addressSubnet(n, addr); ok {
				bits, gw = sub.Bits(), g.String()
			}
		}
		e.IPs = append(e.IPs, JournalIP{Address: netip.PrefixFrom(addr, bits).String(), Gateway: gw})
	}
	return e, nil
}

// contrailVM is the body of POST /vm.
type contrailVM struct {
	VMUUID      string `json:"vm-uuid"`
	VMName      string `json:"vm-name"`
	HostIfName  string `json:"host-ifname"`
	VNUUID      string `json:"vn-uuid"`
	VMIUUID     string `json:"vmi-uuid"`
	VMID        string `json:"vm-id,omitempty"`
	VMIfName    string `json:"vm-ifname,omitempty"`
	VMNamespace string `json:"vm-namespace,omitempty"`
}

// contrailPostVM records that a VMI belongs to a VM (POST /vm). The
// agent's own ports already know their VM; for others an external entry
// is made or completed.
func (a *Agent) contrailPostVM(w http.ResponseWriter, r *http.Request) {
	body, err := readContrailBody(r)
	if err != nil {
		writeContrailError(w, http.StatusInternalServerError, err.Error())
		return
	}
	var vm contrailVM
	if err := json.Unmarshal(body, &vm); err != nil {
		writeContrailError(w, http.StatusInternalServerError, "{ Invalid JSON }")
		return
	}
	for _, f := range []struct{ name, value string }{
		{"vm-uuid", vm.VMUUID}, {"vm-name", vm.VMName}, {"host-ifname", vm.HostIfName}, {"vn-uuid", vm.VNUUID}, {"vmi-uuid", vm.VMIUUID},
	} {
		if f.value == "" {
			writeContrailError(w, http.StatusInternalServerError, fmt.Sprintf("{ Invalid or missing data for %s }", f.name))
			return
		}
	}
	if !api.IsUUID(vm.VMIUUID) {
		writeContrailError(w, http.StatusInternalServerError, "{ Invalid or missing data for vmi-uuid }")
		return
	}
	vmi := strings.ToLower(vm.VMIUUID)
	if cur, ok := a.findPort(vmi); ok && !cur.External {
		writeContrail(w, http.StatusOK, struct{}{})
		return
	}
	key := externalKey(vmi)
	unlock := a.keys.Lock(key)
	defer unlock()
	e, ok := a.journal.Get(key)
	if !ok {
		e = &Entry{
			ContainerID: vm.VMUUID, NetworkUUID: strings.ToLower(vm.VNUUID), PortUUID: vmi,
			State: StateAttached, External: true, Contrail: &ContrailInfo{VMUUID: vm.VMUUID},
		}
		if n := a.cache.Network(e.NetworkUUID); n != nil {
			e.NetworkFQName = n.FQName
		}
	}
	if e.Contrail == nil {
		e.Contrail = &ContrailInfo{}
	}
	// As the vRouter agent: what is recorded is not overwritten.
	e.Contrail.VMUUID = cmp.Or(e.Contrail.VMUUID, vm.VMUUID)
	e.Contrail.VMName = cmp.Or(e.Contrail.VMName, vm.VMName)
	e.Contrail.VMIfName = cmp.Or(e.Contrail.VMIfName, vm.VMIfName)
	e.Contrail.VMNamespace = cmp.Or(e.Contrail.VMNamespace, vm.VMNamespace)
	e.HostIf = cmp.Or(e.HostIf, vm.HostIfName)
	e.IfName = cmp.Or(e.IfName, vm.VMIfName)
	e.Netns = cmp.Or(e.Netns, vm.VMNamespace)
	if err := a.journal.Put(e); err != nil {
		writeContrailError(w, http.StatusInternalServerError, "{ "+err.Error()+" }")
		return
	}
	writeContrail(w, http.StatusOK, struct{}{})
}

// contrailDeleteExternal forgets the external entries that match. The
// agent's own ports go away through the CNI plugin (DEL), not here.
func (a *Agent) contrailDeleteExternal(w http.ResponseWriter, match func(*Entry) bool) {
	for _, e := range a.journal.Entries() {
		if !match(e) {
			continue
		}
		if !e.External {
			a.log.Debug("port api delete of an agent-managed port ignored; the CNI plugin's DEL removes it", "port", e.PortUUID)
			continue
		}
		unlock := a.keys.Lock(e.Key())
		err := a.journal.Delete(e.Key())
		unlock()
		if err != nil {
			writeContrailError(w, http.StatusInternalServerError, "{ "+err.Error()+" }")
			return
		}
		a.log.Info("external port removed", "port", e.PortUUID)
	}
	writeContrail(w, http.StatusOK, struct{}{})
}
