package mesosmanager

import (
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
)

// FuzzParseLabels checks that the label parser never panics, that every
// error names the label it is about, and that what it accepts is what the
// controller accepts: floating-ips items round-trip through their stored
// form, security groups and networks are well-formed fq_names.
func FuzzParseLabels(f *testing.F) {
	f.Add("blue-network", "default-domain:default-project:__public__:__fip_pool_public__(10.66.77.123),default-domain:default-project:__public__:__fip_pool_public2__(10.33.44.11)", "default-domain:default-project:security_groups_mesos", "default-project")
	f.Add("d:p:n", "d:p:n:pool", "web,d:p:db", "d:p")
	f.Add("", "", "", "")
	f.Add("a,b", "d:p:n:pool(", "::", "a:b:c")
	f.Add("x", "d:p:n:pool(2001:db8::1%eth0)", "d:p:", " ")
	f.Add("6f1c1f3e-1111-4222-8333-444455556666", "d:p:n:pool(1.2.3.4),d:p:n:pool(1.2.3.4)", "a b", "p")
	f.Fuzz(func(t *testing.T, networks, fips, sgs, project string) {
		labels := map[string]string{
			LabelNetworks: networks, LabelFloatingIPs: fips, LabelSecurityGroups: sgs, LabelProjectName: project,
		}
		spec, errs := ParseNetworkLabels(labels)
		known := map[string]bool{LabelNetworks: true, LabelFloatingIPs: true, LabelSecurityGroups: true, LabelProjectName: true}
		failed := map[string]bool{}
		for _, e := range errs {
			if !known[e.Label] || e.Value != labels[e.Label] || !strings.Contains(e.Error(), e.Label) {
				t.Fatalf("error about an unexpected label: %v", e)
			}
			failed[e.Label] = true
		}
		if !failed[LabelFloatingIPs] {
			if !spec.HasFloatingIPs {
				t.Fatalf("floating-ips %q accepted but not set", fips)
			}
			var stored []string
			for _, fip := range spec.FloatingIPs {
				if parts := strings.Split(fip.Pool, ":"); len(parts) != 4 {
					t.Fatalf("pool %q is not domain:project:network:pool", fip.Pool)
				}
				stored = append(stored, fip.String())
			}
			again, err := ParseFloatingIPs(strings.Join(stored, ","))
			if err != nil || len(again) != len(spec.FloatingIPs) {
				t.Fatalf("stored form %q does not parse back: %v", stored, err)
			}
			for i := range again {
				if again[i] != spec.FloatingIPs[i] {
					t.Fatalf("round trip changed %v to %v", spec.FloatingIPs[i], again[i])
				}
			}
		} else if spec.HasFloatingIPs {
			t.Fatal("bad floating-ips set")
		}
		if spec.HasSecurityGroups {
			for _, sg := range spec.SecurityGroups {
				p := api.Port{Meta: api.Meta{Kind: api.KindPort, Name: "p"}, Network: "n", SecurityGroups: []string{sg}}
				if err := api.Validate(&p); err != nil {
					t.Fatalf("security group %q accepted by the parser, refused by the api: %v", sg, err)
				}
			}
		} else if !failed[LabelSecurityGroups] && !failed[LabelProjectName] {
			t.Fatalf("security-groups %q neither accepted nor refused", sgs)
		}
		if spec.Network != "" && spec.Network != api.DefaultTaskNetwork && !api.IsUUID(spec.Network) {
			parts := strings.Split(spec.Network, ":")
			if len(parts) != 3 {
				t.Fatalf("network %q is not domain:project:name", spec.Network)
			}
			for _, p := range parts {
				if err := api.ValidName(p); err != nil {
					t.Fatalf("network %q: %v", spec.Network, err)
				}
			}
		}
		if failed[LabelNetworks] && spec.Network != "" {
			t.Fatalf("bad networks %q still resolved to %q", networks, spec.Network)
		}
	})
}
