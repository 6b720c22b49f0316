// Package mesos holds the parts of the Apache Mesos contract that Weft
// touches, modelled on the upstream sources (mesos.proto, the network/cni
// isolator's spec.proto, stout's JSON library and src/common/http.cpp):
//
//   - the contract types NetworkInfo (with IPAddress, PortMapping and
//     Labels), ContainerID, TaskStatus, ContainerStatus, ContainerInfo and
//     Task, rendered as protobuf JSON (labels as {"labels":[…]}, ids
//     wrapped as {"value":…}) by MarshalJSON and ProtoObject, and in the
//     agent/master /state form (labels as bare arrays, ids as strings) by
//     StateObject;
//   - the CNI 0.1.0/0.2.0 result parser exactly as the isolator parses a
//     plugin's stdout (ParseCNIResult: unknown keys ignored, null is
//     unset, ip4.ip required inside ip4), the network configuration parser
//     used when loading the config directory (ParseNetworkConfig), the
//     status address rules of the isolator (CNIResult.IPAddresses: IPv4
//     prefix stripped, which needs a CIDR, IPv6 reported as returned) and
//     the resolv.conf writer;
//   - stout's JSON writer (MarshalSorted, MarshalStout, FormatDouble):
//     Mesos re-serializes a CNI configuration with its keys sorted, compact,
//     '/' escaped as "\/", integers as integers and doubles printed with
//     15 significant digits.
//
// Parsing follows stout's protobuf-from-JSON rules rather than
// encoding/json's: unknown keys are ignored, null leaves a field unset, a
// single value given for a repeated field is one element, a type mismatch
// fails with "Not expecting a JSON <type> for field '<name>'", and missing
// required fields fail with "Missing required fields: <paths>".
//
// Known simplifications: an empty string is treated as an unset optional
// string (protobuf would distinguish "set to empty"), except for label
// values, whose absence is explicit (Label.NoValue).
package mesos
