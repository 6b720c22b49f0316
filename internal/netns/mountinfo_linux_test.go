//go:build linux

package netns

import "testing"

func TestUnescapeMountPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/run/netns/a", "/run/netns/a"},
		// From internal/dockerlab's TestUnescapeMount, where this was.
		{`/a\040b`, "/a b"},
		{`/plain`, "/plain"},
		{`/x\134y`, `/x\y`},
		{`/end\04`, `/end\04`},
		{`/a\011b\012c\134d`, "/a\tb\nc\\d"},
		{`\040`, " "},
		{`/not\09octal`, `/not\09octal`}, // not octal: kept
		{`/too\777big`, `/too\777big`},   // over a byte: kept
		{`/x\\040`, `/x\ `},              // first backslash kept, then \040
	} {
		if got := UnescapeMountPath(tc.in); got != tc.want {
			t.Errorf("UnescapeMountPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
