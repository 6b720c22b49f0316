//go:build linux

package netns

import (
	"strconv"
	"strings"
)

// UnescapeMountPath decodes a path field (mount point or root) of
// /proc/self/mountinfo, where the kernel writes a space, tab, newline and
// backslash as the octal escapes \040, \011, \012 and \134. A backslash
// not followed by three octal digits (of a byte's value) is kept as it is.
func UnescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
