package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
)

// Defaults of the weft configuration object.
const (
	// DefaultSocket is the Weft agent's local API socket.
	DefaultSocket = "/run/weft/agent.sock"
	// DefaultDomain and DefaultProject are where short network names
	// resolve when neither the config nor the labels say otherwise.
	DefaultDomain      = "default-domain"
	DefaultProjectName = "default-project"
	DefaultProject     = DefaultDomain + ":" + DefaultProjectName
	// DefaultTimeout bounds the whole agent call of one command.
	DefaultTimeout = 10 * time.Second
	// MaxContrailTimeout caps the deadline derived from Contrail's
	// poll-timeout × poll-retries.
	MaxContrailTimeout = 60 * time.Second
	// DefaultCNIVersion is the version of a config without cniVersion
	// (CNI specification; Mesos configs usually have none).
	DefaultCNIVersion = "0.1.0"
)

// Contrail's defaults for the keys whose product gives the deadline.
const (
	contrailDefaultPollTimeout = 3  // seconds
	contrailDefaultPollRetries = 20 // polls
)

// NetConf is the network configuration read from stdin, with the weft and
// contrail objects resolved into effective settings.
type NetConf struct {
	// CNIVersion is the config's cniVersion, DefaultCNIVersion when missing
	// or empty.
	CNIVersion string
	// Name is the CNI network name; Type the plugin's binary name.
	Name string
	Type string

	// Socket is the agent's unix socket (weft.socket).
	Socket string
	// Network is the Weft network used when the NetworkInfo has no
	// networks label (weft.network); empty means the default task network.
	Network string
	// Project is domain:project for short network names (weft.project).
	Project string
	// Timeout bounds the agent call: weft.timeout, else Contrail's
	// poll-timeout × poll-retries capped at MaxContrailTimeout, else
	// DefaultTimeout.
	Timeout time.Duration
	// LogFile and LogLevel come from weft.log-file/log-level, else from
	// contrail.log-file/log-level. No file, no logging.
	LogFile  string
	LogLevel slog.Level
	// MTU of the container interface (weft.mtu, else contrail.mtu); 0 takes
	// the network's.
	MTU int
	// DNS overrides, field by field, the DNS the agent returns (weft.dns).
	DNS types.DNS
	// FallbackDNS is the standard top-level "dns" key: used for the fields
	// that neither weft.dns nor the agent set.
	FallbackDNS types.DNS

	// Contrail is the contrail object when present.
	Contrail *ContrailConf
	// NetworkInfo is args["org.apache.mesos"].network_info when present.
	NetworkInfo *NetworkInfo
	// Selection is what the NetworkInfo labels and addresses and the
	// standard args.cni (ips, labels) ask for.
	Selection Selection
	// ValidAttachments is cni.dev/valid-attachments (GC).
	ValidAttachments []types.GCAttachment

	// Warnings are the bad values a lenient parse (DEL, GC, STATUS) replaced
	// by defaults.
	Warnings []error
}

// ContrailConf is the "contrail" object of a Contrail CNI config. Only
// poll-timeout, poll-retries, log-file, log-level and mtu change what Weft
// does; the others are accepted and kept. Unknown keys are ignored.
type ContrailConf struct {
	VRouterIP       string `json:"vrouter-ip,omitempty"`
	VRouterPort     int    `json:"vrouter-port,omitempty"`
	PollTimeout     int    `json:"poll-timeout,omitempty"`
	PollRetries     int    `json:"poll-retries,omitempty"`
	ConfigDir       string `json:"config-dir,omitempty"`
	LogFile         string `json:"log-file,omitempty"`
	LogLevel        string `json:"log-level,omitempty"`
	ClusterName     string `json:"cluster-name,omitempty"`
	Mode            string `json:"mode,omitempty"`
	MesosIP         string `json:"mesos-ip,omitempty"`
	MesosPort       string `json:"mesos-port,omitempty"`
	VifType         string `json:"vif-type,omitempty"`
	ParentInterface string `json:"parent-interface,omitempty"`
	MTU             int    `json:"mtu,omitempty"`
	MetaPlugin      string `json:"meta-plugin,omitempty"`
}

// ParseConfig parses the network configuration a runtime writes on stdin,
// strictly: any bad value is an error naming its field (a *FieldError), and
// stdin that is not a JSON object is an *Error with code 6. Unknown keys are
// ignored.
func ParseConfig(data []byte) (*NetConf, error) {
	return parseConfig(data, true)
}

// parseLenient parses like ParseConfig but replaces bad values of args,
// weft and contrail keys by their defaults, recording them in Warnings.
// DEL, GC and STATUS use it: Mesos calls DEL with the very stdin of a failed
// ADD, and a config that cannot change must not make cleanup fail forever.
// Stdin that is not JSON, a missing name and bad valid-attachments are
// still errors.
func parseLenient(data []byte) (*NetConf, error) {
	return parseConfig(data, false)
}

// configParser collects field errors.
type configParser struct {
	errs []error
}

// note records err when it is not nil and reports whether it was nil.
func (p *configParser) note(err error) bool {
	if err != nil {
		p.errs = append(p.errs, err)
		return false
	}
	return true
}

func parseConfig(data []byte, strict bool) (*NetConf, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		if err == nil {
			err = errors.New("stdin is null")
		}
		return nil, newError(CodeDecodingFailure, err, "network configuration on stdin is not a JSON object")
	}
	c := &NetConf{
		CNIVersion: DefaultCNIVersion,
		Socket:     DefaultSocket,
		Project:    DefaultProject,
		Timeout:    DefaultTimeout,
		LogLevel:   slog.LevelInfo,
	}
	// Keys every command needs: errors even in a lenient parse.
	v, err := decodeString(top["cniVersion"], "cniVersion")
	if err != nil {
		return nil, err
	}
	if v = strings.TrimSpace(v); v != "" {
		c.CNIVersion = v
	}
	if c.Name, err = decodeString(top["name"], "name"); err != nil {
		return nil, err
	}
	if terr := utils.ValidateNetworkName(c.Name); terr != nil {
		if c.Name == "" {
			return nil, fieldErrorf("name", "is missing")
		}
		return nil, fieldErrorf("name", "%q has characters other than letters, digits, '_', '.' and '-'", c.Name)
	}
	if c.ValidAttachments, err = parseAttachments(top); err != nil {
		return nil, err
	}

	var p configParser
	if t, err := decodeString(top["type"], "type"); p.note(err) {
		c.Type = t
	}
	p.parseContrail(c, top["contrail"])
	p.parseWeft(c, top["weft"])
	if dns, err := parseDNS(top["dns"], "dns"); p.note(err) {
		c.FallbackDNS = dns
	}
	p.parseArgs(c, top["args"])

	if len(p.errs) > 0 {
		if strict {
			return nil, p.errs[0]
		}
		c.Warnings = p.errs
	}
	return c, nil
}

// parseAttachments reads cni.dev/valid-attachments, or the misspelt
// cni.dev/attachments of early runtimes (containernetworking/cni#1101).
func parseAttachments(top map[string]json.RawMessage) ([]types.GCAttachment, error) {
	key := "cni.dev/valid-attachments"
	raw, ok := top[key]
	if !ok {
		key = "cni.dev/attachments"
		raw = top[key]
	}
	elems, err := decodeArray(raw, key)
	if err != nil {
		return nil, err
	}
	var out []types.GCAttachment
	for i, e := range elems {
		path := indexPath(key, i)
		m, err := decodeObject(e, path)
		if err != nil {
			return nil, err
		}
		var a types.GCAttachment
		if a.ContainerID, err = decodeString(m["containerID"], joinPath(path, "containerID")); err != nil {
			return nil, err
		}
		if a.IfName, err = decodeString(m["ifname"], joinPath(path, "ifname")); err != nil {
			return nil, err
		}
		if a.ContainerID == "" {
			return nil, fieldErrorf(joinPath(path, "containerID"), "is missing")
		}
		out = append(out, a)
	}
	return out, nil
}

// parseContrail reads the contrail object.
func (p *configParser) parseContrail(c *NetConf, raw json.RawMessage) {
	const base = "contrail"
	m, err := decodeObject(raw, base)
	if !p.note(err) || m == nil {
		return
	}
	cc := &ContrailConf{}
	// Keys in a fixed order, so that the first error reported is stable.
	strs := []struct {
		key string
		dst *string
	}{
		{"vrouter-ip", &cc.VRouterIP},
		{"config-dir", &cc.ConfigDir},
		{"log-file", &cc.LogFile},
		{"cluster-name", &cc.ClusterName},
		{"mode", &cc.Mode},
		{"mesos-ip", &cc.MesosIP},
		{"vif-type", &cc.VifType},
		{"parent-interface", &cc.ParentInterface},
		{"meta-plugin", &cc.MetaPlugin},
	}
	for _, f := range strs {
		if s, err := decodeString(m[f.key], joinPath(base, f.key)); p.note(err) {
			*f.dst = s
		}
	}
	// Strings that are often written as numbers.
	for _, f := range []struct {
		key string
		dst *string
	}{{"mesos-port", &cc.MesosPort}, {"log-level", &cc.LogLevel}} {
		if s, err := decodeStringOrNumber(m[f.key], joinPath(base, f.key)); p.note(err) {
			*f.dst = s
		}
	}
	// Integers, also accepted as numeric strings.
	ints := []struct {
		key string
		dst *int
	}{
		{"vrouter-port", &cc.VRouterPort},
		{"poll-timeout", &cc.PollTimeout},
		{"poll-retries", &cc.PollRetries},
		{"mtu", &cc.MTU},
	}
	for _, f := range ints {
		if n, _, err := decodeInt(m[f.key], joinPath(base, f.key), true); p.note(err) {
			*f.dst = n
		}
	}
	if cc.VRouterPort < 0 || cc.VRouterPort > 65535 {
		p.note(fieldErrorf(joinPath(base, "vrouter-port"), "%d is not a port number", cc.VRouterPort))
		cc.VRouterPort = 0
	}
	for _, f := range ints[1:3] {
		if *f.dst < 0 {
			p.note(fieldErrorf(joinPath(base, f.key), "must be positive, not %d", *f.dst))
			*f.dst = 0
		}
	}
	if err := checkMTU(cc.MTU, joinPath(base, "mtu")); !p.note(err) {
		cc.MTU = 0
	}
	c.Contrail = cc

	// Effective settings; weft keys, read later, override them.
	if cc.PollTimeout > 0 || cc.PollRetries > 0 {
		pt, pr := cc.PollTimeout, cc.PollRetries
		if pt == 0 {
			pt = contrailDefaultPollTimeout
		}
		if pr == 0 {
			pr = contrailDefaultPollRetries
		}
		c.Timeout = min(time.Duration(pt)*time.Duration(pr)*time.Second, MaxContrailTimeout)
	}
	if cc.LogFile != "" {
		c.LogFile = cc.LogFile
	}
	if cc.LogLevel != "" {
		if lvl, err := parseLogLevel(cc.LogLevel, joinPath(base, "log-level")); p.note(err) {
			c.LogLevel = lvl
		}
	}
	if cc.MTU != 0 {
		c.MTU = cc.MTU
	}
}

// parseWeft reads the weft object.
func (p *configParser) parseWeft(c *NetConf, raw json.RawMessage) {
	const base = "weft"
	m, err := decodeObject(raw, base)
	if !p.note(err) || m == nil {
		return
	}
	if s, err := decodeString(m["socket"], joinPath(base, "socket")); p.note(err) && s != "" {
		if !filepath.IsAbs(s) {
			p.note(fieldErrorf(joinPath(base, "socket"), "%q must be an absolute path", s))
		} else {
			c.Socket = filepath.Clean(s)
		}
	}
	if s, err := decodeString(m["network"], joinPath(base, "network")); p.note(err) {
		s = strings.TrimSpace(s)
		if err := checkNetworkRef(s); s != "" && err != nil {
			p.note(fieldErrorf(joinPath(base, "network"), "%v", err))
		} else {
			c.Network = s
		}
	}
	if s, err := decodeString(m["project"], joinPath(base, "project")); p.note(err) && strings.TrimSpace(s) != "" {
		if proj, err := normalizeProject(strings.TrimSpace(s)); err != nil {
			p.note(fieldErrorf(joinPath(base, "project"), "%v", err))
		} else {
			c.Project = proj
		}
	}
	if d, ok, err := parseTimeout(m["timeout"], joinPath(base, "timeout")); p.note(err) && ok {
		c.Timeout = d
	}
	if s, err := decodeString(m["log-file"], joinPath(base, "log-file")); p.note(err) && s != "" {
		c.LogFile = s
	}
	if s, err := decodeStringOrNumber(m["log-level"], joinPath(base, "log-level")); p.note(err) && s != "" {
		if lvl, err := parseLogLevel(s, joinPath(base, "log-level")); p.note(err) {
			c.LogLevel = lvl
		}
	}
	if n, ok, err := decodeInt(m["mtu"], joinPath(base, "mtu"), false); p.note(err) && ok {
		if err := checkMTU(n, joinPath(base, "mtu")); p.note(err) {
			c.MTU = n
		}
	}
	if dns, err := parseDNS(m["dns"], joinPath(base, "dns")); p.note(err) {
		c.DNS = dns
	}
}

// parseArgs reads the args object: Mesos' network_info and the standard
// args.cni (ips, labels). Other keys are ignored.
func (p *configParser) parseArgs(c *NetConf, raw json.RawMessage) {
	m, err := decodeObject(raw, "args")
	if !p.note(err) || m == nil {
		return
	}
	var labels []labelRef
	var addrs []addrRef

	// args.cni: the conventions document's standard args.
	if cm, err := decodeObject(m["cni"], "args.cni"); p.note(err) && cm != nil {
		if ips, err := decodeStringList(cm["ips"], "args.cni.ips"); p.note(err) {
			for i, s := range ips {
				path := indexPath("args.cni.ips", i)
				// The conventions allow "10.1.0.5" and "10.1.0.5/24".
				text, _, _ := strings.Cut(strings.TrimSpace(s), "/")
				addr, err := parseAddr(text, path)
				if !p.note(err) {
					continue
				}
				proto := ProtocolIPv4
				if addr.Is6() {
					proto = ProtocolIPv6
				}
				addrs = append(addrs, addrRef{IPAddress: IPAddress{Protocol: proto, IPAddress: addr.String()}, path: path})
			}
		}
		if cl, listPath, err := parseLabels(cm["labels"], "args.cni.labels"); p.note(err) {
			for i, l := range cl {
				labels = append(labels, labelRef{Label: l, path: indexPath(listPath, i)})
			}
		}
	}

	// args["org.apache.mesos"].network_info: Mesos' labels win over
	// args.cni labels; its addresses come first.
	mesosPath := "args." + MesosArgsKey
	if mm, err := decodeObject(m[MesosArgsKey], mesosPath); p.note(err) && mm != nil {
		if ni, err := parseNetworkInfo(mm["network_info"], NetworkInfoPath); p.note(err) && ni != nil {
			c.NetworkInfo = ni
			labels = append(labels, ni.labelRefs()...)
			addrs = append(ni.addrRefs(), addrs...)
		}
	}
	sel, err := buildSelection(labels, addrs)
	if p.note(err) {
		c.Selection = sel
	}
}

// parseTimeout reads a duration: a Go duration string ("10s", "1m30s") or a
// number of seconds. It must be positive.
func parseTimeout(raw json.RawMessage, path string) (time.Duration, bool, error) {
	var d time.Duration
	switch kindOf(raw) {
	case kindNull:
		return 0, false, nil
	case kindNumber:
		f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
		if err != nil {
			return 0, false, &FieldError{Field: path, Msg: "is not a number of seconds", Err: err}
		}
		if f > (24 * time.Hour).Seconds() {
			return 0, false, fieldErrorf(path, "%gs is longer than a day", f)
		}
		d = time.Duration(f * float64(time.Second))
	default:
		s, err := decodeString(raw, path)
		if err != nil {
			return 0, false, fieldErrorf(path, "must be a duration such as \"10s\", not %s", kindOf(raw))
		}
		if d, err = time.ParseDuration(strings.TrimSpace(s)); err != nil {
			return 0, false, &FieldError{Field: path, Msg: fmt.Sprintf("%q is not a duration such as \"10s\"", s), Err: err}
		}
	}
	if d <= 0 {
		return 0, false, fieldErrorf(path, "must be positive")
	}
	return d, true, nil
}

// parseLogLevel reads a log level: debug, info, warn(ing), error, or a
// Contrail-style number (0-1 error, 2 warn, 3 info, 4 and more debug;
// Contrail's default is "4").
func parseLogLevel(s, path string) (slog.Level, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "debug", "trace":
		return slog.LevelDebug, nil
	case "info", "notice":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "err", "critical", "crit":
		return slog.LevelError, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fieldErrorf(path, "%q must be debug, info, warn, error or a number 0-4", s)
	}
	switch {
	case n <= 1:
		return slog.LevelError, nil
	case n == 2:
		return slog.LevelWarn, nil
	case n == 3:
		return slog.LevelInfo, nil
	}
	return slog.LevelDebug, nil
}

// checkMTU accepts 0 (the network's MTU) and 68-65535.
func checkMTU(n int, path string) error {
	if n != 0 && (n < 68 || n > 65535) {
		return fieldErrorf(path, "%d is not an MTU (68-65535, or 0 for the network's)", n)
	}
	return nil
}

// normalizeProject accepts domain:project, or a bare project name in the
// default domain.
func normalizeProject(s string) (string, error) {
	dom, proj, ok := strings.Cut(s, ":")
	if !ok {
		dom, proj = DefaultDomain, s
	}
	if dom == "" || proj == "" || strings.Contains(proj, ":") || strings.ContainsAny(s, " \t,") {
		return "", fmt.Errorf("%q must be domain:project", s)
	}
	return dom + ":" + proj, nil
}

// parseDNS reads {nameservers, domain, search, options}.
func parseDNS(raw json.RawMessage, path string) (types.DNS, error) {
	var dns types.DNS
	m, err := decodeObject(raw, path)
	if err != nil || m == nil {
		return dns, err
	}
	if dns.Nameservers, err = decodeStringList(m["nameservers"], joinPath(path, "nameservers")); err != nil {
		return types.DNS{}, err
	}
	for i, ns := range dns.Nameservers {
		if _, err := netip.ParseAddr(strings.TrimSpace(ns)); err != nil {
			return types.DNS{}, &FieldError{Field: indexPath(joinPath(path, "nameservers"), i), Msg: fmt.Sprintf("%q is not an IP address", ns), Err: err}
		}
		dns.Nameservers[i] = strings.TrimSpace(ns)
	}
	if dns.Domain, err = decodeString(m["domain"], joinPath(path, "domain")); err != nil {
		return types.DNS{}, err
	}
	if dns.Search, err = decodeStringList(m["search"], joinPath(path, "search")); err != nil {
		return types.DNS{}, err
	}
	if dns.Options, err = decodeStringList(m["options"], joinPath(path, "options")); err != nil {
		return types.DNS{}, err
	}
	return dns, nil
}
