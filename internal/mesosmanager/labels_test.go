package mesosmanager

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
)

func TestParseNetworkLabels(t *testing.T) {
	pool := "default-domain:default-project:__public__:__fip_pool_public__"
	pool2 := "default-domain:default-project:__public__:__fip_pool_public2__"
	tests := []struct {
		name   string
		labels map[string]string
		check  func(t *testing.T, s NetworkSpec)
		// errLabel is the label the one error must name ("" none);
		// errText a part of its reason.
		errLabel, errText string
	}{
		// networks
		{name: "no labels: default task network", labels: nil, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, api.DefaultTaskNetwork)
			want(t, s.Project, api.DefaultProject)
		}},
		{name: "networks short name", labels: map[string]string{"networks": "blue-network"}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, "default-domain:default-project:blue-network")
		}},
		{name: "networks fq name", labels: map[string]string{"networks": "d:p:blue"}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, "d:p:blue")
		}},
		{name: "networks uuid", labels: map[string]string{"networks": "6F1C1F3E-1111-4222-8333-444455556666"}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, "6f1c1f3e-1111-4222-8333-444455556666")
		}},
		{name: "networks empty: default", labels: map[string]string{"networks": " "}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, api.DefaultTaskNetwork)
		}},
		{name: "networks with project labels", labels: map[string]string{"networks": "blue", "project-name": "p1", "domain-name": "d1"}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, "d1:p1:blue")
			want(t, s.Project, "d1:p1")
		}},
		{name: "networks two names", labels: map[string]string{"networks": "a,b"}, errLabel: "networks", errText: "more than one network"},
		{name: "networks two parts", labels: map[string]string{"networks": "p:blue"}, errLabel: "networks", errText: "2 parts"},
		{name: "networks empty part", labels: map[string]string{"networks": "d::blue"}, errLabel: "networks", errText: "part 2"},
		{name: "networks with space", labels: map[string]string{"networks": "blue net"}, errLabel: "networks", errText: "spaces"},
		{name: "networks with slash", labels: map[string]string{"networks": "blue/net"}, errLabel: "networks", errText: "may not contain"},

		// project-name and domain-name
		{name: "project-name domain:project", labels: map[string]string{"project-name": "d2:p2"}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Project, "d2:p2")
		}},
		{name: "project-name domain:project agreeing", labels: map[string]string{"project-name": "d2:p2", "domain-name": "d2"}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Project, "d2:p2")
		}},
		{name: "domain-name alone", labels: map[string]string{"domain-name": "d3"}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Project, "d3:default-project")
		}},
		{name: "project-name contradicts domain-name", labels: map[string]string{"project-name": "d2:p2", "domain-name": "d9"}, errLabel: "project-name", errText: "contradicts"},
		{name: "project-name three parts", labels: map[string]string{"project-name": "a:b:c"}, errLabel: "project-name", errText: "project part"},
		{name: "project-name with space", labels: map[string]string{"project-name": "my project"}, errLabel: "project-name", errText: "spaces"},
		{name: "domain-name with colon", labels: map[string]string{"domain-name": "a:b"}, errLabel: "domain-name", errText: "may not contain"},
		{name: "bad project leaves short network unknown", labels: map[string]string{"project-name": "a b", "networks": "blue"}, errLabel: "project-name", check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, "")
		}},
		{name: "bad project keeps fq network", labels: map[string]string{"project-name": "a b", "networks": "d:p:blue"}, errLabel: "project-name", check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, "d:p:blue")
		}},

		// network-subnets
		{name: "subnets", labels: map[string]string{"network-subnets": "5.5.5.0/24, fd00::/64,"}, check: func(t *testing.T, s NetworkSpec) {
			if !slices.Equal(s.Subnets, []netip.Prefix{netip.MustParsePrefix("5.5.5.0/24"), netip.MustParsePrefix("fd00::/64")}) {
				t.Errorf("subnets %v", s.Subnets)
			}
		}},
		{name: "subnets not a CIDR", labels: map[string]string{"network-subnets": "5.5.5.0"}, errLabel: "network-subnets", errText: "not a CIDR"},
		{name: "subnets host bits", labels: map[string]string{"network-subnets": "5.5.5.1/24"}, errLabel: "network-subnets", errText: "did you mean 5.5.5.0/24"},

		// floating-ips
		{name: "floating-ips contrail example", labels: map[string]string{"floating-ips": pool + "(10.66.77.123)," + pool2 + "(10.33.44.11)"}, check: func(t *testing.T, s NetworkSpec) {
			wantFIPs := []FloatingIPSpec{{Pool: pool, Address: netip.MustParseAddr("10.66.77.123")}, {Pool: pool2, Address: netip.MustParseAddr("10.33.44.11")}}
			if !s.HasFloatingIPs || !reflect.DeepEqual(s.FloatingIPs, wantFIPs) {
				t.Errorf("floating ips %+v", s.FloatingIPs)
			}
		}},
		{name: "floating-ips without address", labels: map[string]string{"floating-ips": pool}, check: func(t *testing.T, s NetworkSpec) {
			if len(s.FloatingIPs) != 1 || s.FloatingIPs[0].Address.IsValid() || s.FloatingIPs[0].String() != pool {
				t.Errorf("floating ips %+v", s.FloatingIPs)
			}
		}},
		{name: "floating-ips ipv6", labels: map[string]string{"floating-ips": pool + "(2001:db8::7)"}, check: func(t *testing.T, s NetworkSpec) {
			want(t, s.FloatingIPs[0].String(), pool+"(2001:db8::7)")
		}},
		{name: "floating-ips empty", labels: map[string]string{"floating-ips": ""}, check: func(t *testing.T, s NetworkSpec) {
			if !s.HasFloatingIPs || len(s.FloatingIPs) != 0 {
				t.Errorf("floating ips %+v", s.FloatingIPs)
			}
		}},
		{name: "floating-ips short pool", labels: map[string]string{"floating-ips": "__public__:pool(1.2.3.4)"}, errLabel: "floating-ips", errText: "domain:project:network:pool"},
		{name: "floating-ips bad address", labels: map[string]string{"floating-ips": pool + "(10.66.77.300)"}, errLabel: "floating-ips", errText: "not an IP address"},
		{name: "floating-ips unclosed", labels: map[string]string{"floating-ips": pool + "(10.66.77.1"}, errLabel: "floating-ips", errText: "pool or pool(address)"},
		{name: "floating-ips stray paren", labels: map[string]string{"floating-ips": pool + ")"}, errLabel: "floating-ips", errText: "pool or pool(address)"},
		{name: "floating-ips empty parens", labels: map[string]string{"floating-ips": pool + "()"}, errLabel: "floating-ips", errText: "empty parentheses"},
		{name: "floating-ips same address twice", labels: map[string]string{"floating-ips": pool + "(1.2.3.4)," + pool2 + "(1.2.3.4)"}, errLabel: "floating-ips", errText: "twice"},
		{name: "floating-ips prefix", labels: map[string]string{"floating-ips": pool + "(1.2.3.4/32)"}, errLabel: "floating-ips", errText: "not an IP address"},

		// security-groups
		{name: "security-groups fq", labels: map[string]string{"security-groups": "default-domain:default-project:security_groups_mesos"}, check: func(t *testing.T, s NetworkSpec) {
			if !s.HasSecurityGroups || !slices.Equal(s.SecurityGroups, []string{"default-domain:default-project:security_groups_mesos"}) {
				t.Errorf("security groups %v", s.SecurityGroups)
			}
		}},
		{name: "security-groups short names and duplicates", labels: map[string]string{"security-groups": "web, d:p:db,web", "project-name": "p1"}, check: func(t *testing.T, s NetworkSpec) {
			if !slices.Equal(s.SecurityGroups, []string{"default-domain:p1:web", "d:p:db"}) {
				t.Errorf("security groups %v", s.SecurityGroups)
			}
		}},
		{name: "security-groups empty: none", labels: map[string]string{"security-groups": ""}, check: func(t *testing.T, s NetworkSpec) {
			if !s.HasSecurityGroups || s.SecurityGroups == nil || len(s.SecurityGroups) != 0 {
				t.Errorf("security groups %#v", s.SecurityGroups)
			}
		}},
		{name: "security-groups two parts", labels: map[string]string{"security-groups": "p:web"}, errLabel: "security-groups", errText: "domain:project:name"},
		{name: "security-groups empty part", labels: map[string]string{"security-groups": "d::web"}, errLabel: "security-groups", errText: "part 2"},
		{name: "security-groups space", labels: map[string]string{"security-groups": "my sg"}, errLabel: "security-groups", errText: "spaces"},
		{name: "bad project rejects short security group", labels: map[string]string{"security-groups": "web", "project-name": "a b"}, errLabel: "project-name", check: func(t *testing.T, s NetworkSpec) {
			if s.HasSecurityGroups {
				t.Errorf("short security groups accepted without a project: %v", s.SecurityGroups)
			}
		}},

		// independence and unknown labels
		{name: "bad floating-ips leaves the rest", labels: map[string]string{"floating-ips": "nope", "security-groups": "d:p:sg", "networks": "blue", "other": "x"}, errLabel: "floating-ips", check: func(t *testing.T, s NetworkSpec) {
			want(t, s.Network, "default-domain:default-project:blue")
			if !s.HasSecurityGroups || s.HasFloatingIPs || s.Labels["other"] != "x" {
				t.Errorf("spec %+v", s)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec, errs := ParseNetworkLabels(tc.labels)
			if tc.errLabel == "" && len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			if tc.errLabel != "" {
				if len(errs) != 1 {
					t.Fatalf("want one error about %q, got %v", tc.errLabel, errs)
				}
				e := errs[0]
				if e.Label != tc.errLabel || !strings.Contains(e.Error(), `label "`+tc.errLabel+`"`) {
					t.Errorf("error %q does not name label %q", e.Error(), tc.errLabel)
				}
				if !strings.Contains(e.Reason, tc.errText) {
					t.Errorf("error %q does not say %q", e.Error(), tc.errText)
				}
				if e.Value != tc.labels[tc.errLabel] {
					t.Errorf("error value %q, want %q", e.Value, tc.labels[tc.errLabel])
				}
			}
			if tc.check != nil {
				tc.check(t, spec)
			}
		})
	}
}

func TestParseNetworkLabelsSeveralErrors(t *testing.T) {
	_, errs := ParseNetworkLabels(map[string]string{
		"networks": "a:b", "network-subnets": "x", "floating-ips": "y", "security-groups": "a:b", "project-name": "ok",
	})
	var labels []string
	for _, e := range errs {
		labels = append(labels, e.Label)
	}
	slices.Sort(labels)
	if !slices.Equal(labels, []string{"floating-ips", "network-subnets", "networks", "security-groups"}) {
		t.Errorf("errors name %v", labels)
	}
}

func TestContrailExampleLabels(t *testing.T) {
	app := fixtureApp(t, "contrail/contrail-controller/marathon-input-example.json")
	if app.IPAddress == nil || app.IPAddress.NetworkName != "contrail-cni-plugin" {
		t.Fatalf("fixture: ipAddress %+v", app.IPAddress)
	}
	spec, errs := ParseNetworkLabels(app.IPAddress.Labels)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	want(t, spec.Network, "default-domain:default-project:blue-network")
	want(t, spec.Project, "default-domain:default-project")
	if len(spec.Subnets) != 1 || spec.Subnets[0].String() != "5.5.5.0/24" {
		t.Errorf("subnets %v", spec.Subnets)
	}
	var fips []string
	for _, f := range spec.FloatingIPs {
		fips = append(fips, f.String())
	}
	if !slices.Equal(fips, []string{
		"default-domain:default-project:__public__:__fip_pool_public__(10.66.77.123)",
		"default-domain:default-project:__public__:__fip_pool_public2__(10.33.44.11)",
	}) {
		t.Errorf("floating ips %v", fips)
	}
	if !slices.Equal(spec.SecurityGroups, []string{"default-domain:default-project:security_groups_mesos"}) {
		t.Errorf("security groups %v", spec.SecurityGroups)
	}
}

func want[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}
