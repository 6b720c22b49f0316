package api

import "testing"

func TestIsUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"0f5d3e4a-8c1b-4a2e-9d7f-1b2c3d4e5f60": true,
		"0F5D3E4A-8C1B-4A2E-9D7F-1B2C3D4E5F60": true,
		"0f5d3e4a8c1b4a2e9d7f1b2c3d4e5f60":     false,
		"0f5d3e4a-8c1b-4a2e-9d7f-1b2c3d4e5f6":  false,
		"0f5d3e4a-8c1b-4a2e-9d7f-1b2c3d4e5f6g": false,
		"0f5d3e4a_8c1b-4a2e-9d7f-1b2c3d4e5f60": false,
		"default-domain:default-project:blue":  false,
		"":                                     false,
	} {
		if got := IsUUID(s); got != want {
			t.Errorf("IsUUID(%q) = %v, want %v", s, got, want)
		}
	}
}
