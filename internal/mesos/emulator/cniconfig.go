package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/weft-sdn/weft/internal/mesos"
)

// configStore is the isolator's cache of CNI networks: network name →
// configuration file path (cni.cpp loadNetworkConfigs and
// getNetworkConfigJSON).
type configStore struct {
	dir        string
	pluginsDir string
	log        *slog.Logger

	mu     sync.Mutex
	byName map[string]string
}

func newConfigStore(dir, pluginsDir string, log *slog.Logger) (*configStore, error) {
	s := &configStore{dir: dir, pluginsDir: pluginsDir, log: log}
	m, err := s.load()
	if err != nil {
		return nil, fmt.Errorf("Unable to load CNI config: %w", err)
	}
	s.byName = m
	return s, nil
}

// load reads every non-directory file of the config directory, in name
// order, and keeps those that parse as a NetworkConfig, whose name is
// new, and whose type (and ipam.type, when ipam is present) is found on
// the plugin search path. Skipped files are logged.
func (s *configStore) load() (map[string]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("Unable to list the CNI network configuration directory '%s': %w", s.dir, err)
	}
	out := map[string]string{}
	for _, e := range entries {
		path := joinPath(s.dir, e.Name())
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			s.log.Error("failed to read CNI network configuration file", "path", path, "err", err)
			continue
		}
		nc, err := mesos.ParseNetworkConfig(data)
		if err != nil {
			s.log.Error("failed to parse CNI network configuration file", "path", path, "err", err)
			continue
		}
		if _, dup := out[nc.Name]; dup {
			s.log.Error("multiple network configuration for a CNI network is not allowed; skipping file",
				"path", path, "network", nc.Name)
			continue
		}
		if _, ok := which(nc.Type, s.pluginsDir); !ok {
			s.log.Error("skipping network: CNI plugin not found", "network", nc.Name, "path", path, "plugin", nc.Type)
			continue
		}
		if nc.IPAM != nil {
			if _, ok := which(nc.IPAM.Type, s.pluginsDir); !ok {
				s.log.Error("skipping network: IPAM plugin not found", "network", nc.Name, "path", path, "plugin", nc.IPAM.Type)
				continue
			}
		}
		out[nc.Name] = path
	}
	return out, nil
}

// get returns the configuration JSON of network and its file path. A
// cached entry is re-read and re-validated; on failure, or on a miss, the
// whole directory is reloaded (new files are picked up at launch time).
func (s *configStore) get(network string) (map[string]any, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path, ok := s.byName[network]; ok {
		obj, err := readNetworkConfigJSON(network, path)
		if err == nil {
			return obj, path, nil
		}
		s.log.Warn("removing the network from cache due to failure to validate the configuration",
			"network", network, "err", err)
		delete(s.byName, network)
	}
	m, err := s.load()
	if err != nil {
		return nil, "", fmt.Errorf("Encountered error while loading CNI config during a cache-miss for CNI network '%s': %w", network, err)
	}
	s.byName = m
	if path, ok := s.byName[network]; ok {
		obj, err := readNetworkConfigJSON(network, path)
		return obj, path, err
	}
	return nil, "", fmt.Errorf("Unknown CNI network '%s'", network)
}

// names returns the networks currently cached.
func (s *configStore) names() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.byName))
	for k, v := range s.byName {
		out[k] = v
	}
	return out
}

// readNetworkConfigJSON reads a configuration file (or a checkpointed
// network.conf) as a JSON object and checks that its name is network.
func readNetworkConfigJSON(network, path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("Failed to read CNI network configuration file: '%s': %w", path, err)
	}
	obj, err := mesos.DecodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("Failed to parse CNI network configuration file: '%s': %w", path, err)
	}
	v, present := obj["name"]
	if !present {
		return nil, errors.New("Cannot determine the 'name' of the CNI network for this configuration '")
	}
	name, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("Cannot determine the 'name' of the CNI network for this configuration ': %s", errWrongType)
	}
	if name != network {
		return nil, fmt.Errorf("The current CNI configuration network('%s') does not match the network name: '%s'", name, network)
	}
	return obj, nil
}

// errWrongType is stout's JSON::Object::at error for a value of another
// type (null included).
const errWrongType = "Found JSON value of wrong type"

// which is stout's os::which(name, path): the first <dir>/<name> on the
// colon-separated search path that exists and has an execute bit.
func which(name, searchPath string) (string, bool) {
	for _, dir := range strings.Split(searchPath, ":") {
		if dir == "" {
			continue
		}
		p := joinPath(dir, name)
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm()&0o111 == 0 {
			continue
		}
		return p, true
	}
	return "", false
}

// joinPath is stout's path::join for two components: exactly one '/'
// between them, nothing else cleaned.
func joinPath(a, b string) string {
	return strings.TrimSuffix(a, "/") + "/" + strings.TrimPrefix(b, "/")
}
