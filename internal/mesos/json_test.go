package mesos

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFormatDouble(t *testing.T) {
	// Expected values are C's printf("%#.15g") with stout's trailing-zero
	// trimming applied by hand.
	tests := []struct {
		in   float64
		want string
	}{
		{1, "1.0"},
		{0, "0.0"},
		{0.1, "0.1"},
		{0.5, "0.5"},
		{1024, "1024.0"},
		{604800, "604800.0"},
		{1521514818.62408, "1521514818.62408"},
		{123456789012345, "123456789012345.0"},
		{1234567890123456, "1.23456789012346e+15"},
		{0.0001, "0.0001"},
		{0.00001, "1.00000000000000e-05"},
		{1e20, "1.00000000000000e+2"}, // stout strips the exponent's zero too
		{999999999999999.9, "1.00000000000000e+15"},
		{3.14159265358979323, "3.14159265358979"},
		{-2.5, "-2.5"},
	}
	for _, tt := range tests {
		if got := FormatDouble(tt.in); got != tt.want {
			t.Errorf("FormatDouble(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMarshalSorted(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"sorted keys, compact", `{ "b": 1, "a": {"d": true, "c": null} }`, `{"a":{"c":null,"d":true},"b":1}`},
		{"byte order", `{"ipam":1,"ipMasq":2,"isDefaultGateway":3,"Z":4}`, `{"Z":4,"ipMasq":2,"ipam":1,"isDefaultGateway":3}`},
		{"slash escaped", `{"subnet":"10.0.0.0/8"}`, `{"subnet":"10.0.0.0\/8"}`},
		{"escapes", `{"s":"q\" b\\ \n\t\r\b\f \u0001 \u007f"}`, `{"s":"q\" b\\ \n\t\r\b\f \u0001 \u007f"}`},
		{"non-ASCII verbatim", `{"s":"é\u00e9 <>&"}`, `{"s":"éé <>&"}`},
		{"integers stay integers", `{"mtu":1420,"neg":-3,"zero":-0}`, `{"mtu":1420,"neg":-3,"zero":0}`},
		{"doubles", `{"a":1.0,"b":0.5,"c":1e3,"d":2E-1}`, `{"a":1.0,"b":0.5,"c":1000.0,"d":0.2}`},
		{"big integer becomes double", `{"n":18446744073709551615}`, `{"n":1.84467440737096e+19}`},
		{"arrays keep order", `{"x":[3,1,{"b":1,"a":2}]}`, `{"x":[3,1,{"a":2,"b":1}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := DecodeObject([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := MarshalSorted(obj)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestMarshalStoutKeepsObjectOrder(t *testing.T) {
	raw := json.RawMessage(`{"z": 1, "a": [ {"y":"/", "b":2.50} ]}`)
	got, err := MarshalStout(Object{{"b", 1}, {"a", raw}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"b":1,"a":{"z":1,"a":[{"y":"\/","b":2.5}]}}`; string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	sorted, err := MarshalSorted(Object{{"b", 1}, {"a", raw}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":{"a":[{"b":2.5,"y":"\/"}],"z":1},"b":1}`; string(sorted) != want {
		t.Errorf("sorted got  %s\nwant %s", sorted, want)
	}
}

func TestDecodeObjectErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`[1]`, "Unexpected JSON type parsed"},
		{`"x"`, "Unexpected JSON type parsed"},
		{`{"a":1} {"b":2}`, "Parsed JSON included non-whitespace trailing characters"},
		{`{"a":1} x`, "Parsed JSON included non-whitespace trailing characters"},
		{`{"a":`, "unexpected EOF"},
		{``, "EOF"},
	}
	for _, tt := range tests {
		_, err := DecodeObject([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeObject(%q) = %v, want error containing %q", tt.in, err, tt.want)
		}
	}
	if _, err := DecodeObject([]byte(" {\"a\":1}\n\t ")); err != nil {
		t.Errorf("surrounding whitespace: %v", err)
	}
}
