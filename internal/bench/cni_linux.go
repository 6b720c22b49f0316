//go:build linux

// Package bench is Weft's benchmark harness. `weft-bench cni` measures CNI
// ADD+DEL latency of weft-cni and, in the same run and the same namespace
// setup, of Debian's bridge + host-local plugins, at several
// concurrencies, and reports percentiles and the ratio between the two.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/lab"
	"github.com/weft-sdn/weft/internal/netns"
)

// Config of a CNI benchmark run.
type Config struct {
	BinDir       string
	BaselineDir  string
	Iterations   int
	Runs         int
	Concurrency  []int
	Spares       int
	Out          string
	LogLevel     string
	Keep         bool
	innerSocket  string
	innerDataDir string
	innerDaemons string
}

// Result of one plugin at one concurrency.
type Result struct {
	Run         int           `json:"run"`
	Plugin      string        `json:"plugin"`
	Concurrency int           `json:"concurrency"`
	N           int           `json:"n"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	Mean        time.Duration `json:"mean_ns"`
	AddP50      time.Duration `json:"add_p50_ns"`
	DelP50      time.Duration `json:"del_p50_ns"`
	Wall        time.Duration `json:"wall_ns"`
	// CPU per pair while the pairs ran: of the driver and the plugin
	// processes it ran, and of the lab's daemons (controller and agent,
	// which do weft's background work; the machine is shared, so they
	// count against both plugins).
	CPU       time.Duration `json:"cpu_per_pair_ns"`
	DaemonCPU time.Duration `json:"daemon_cpu_per_pair_ns"`
	// MachineCPU is the busy time of all CPUs per pair (everything,
	// kernel threads included) while the pairs ran and the daemons
	// settled.
	MachineCPU time.Duration `json:"machine_cpu_per_pair_ns"`
}

const usage = "Usage: weft-bench cni [--bin-dir DIR] [--baseline-dir DIR] [--iterations N] [--runs N] [--concurrency 1,20]\n" +
	"                      [--spares N] [--out FILE] [--log-level LEVEL] [--keep-logs]\n\n" +
	"Measures CNI ADD+DEL latency of weft-cni on a one-node lab against Debian's bridge + host-local (root).\n"

// Main runs `weft-bench` with args. `cni-inner` is the driver `cni` runs
// inside the lab node's network namespace.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if len(args) == 0 || (args[0] != "cni" && args[0] != "cni-inner") {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cfg := Config{BaselineDir: lab.DebianCNIDir, Iterations: 200, Runs: 1, Concurrency: []int{1, 20}, Spares: 32}
	fs := flag.NewFlagSet("weft-bench "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.BinDir, "bin-dir", "", "directory of weft and weft-cni (default: this binary's)")
	fs.StringVar(&cfg.BaselineDir, "baseline-dir", cfg.BaselineDir, "directory of the baseline bridge and host-local plugins")
	fs.IntVar(&cfg.Iterations, "iterations", cfg.Iterations, "ADD+DEL pairs per plugin and concurrency")
	fs.IntVar(&cfg.Runs, "runs", cfg.Runs, "measure everything this many times in the same lab and report the median ratios too")
	conc := fs.String("concurrency", "1,20", "comma-separated concurrencies")
	fs.IntVar(&cfg.Spares, "spares", cfg.Spares, "addresses each agent reserves ahead of need per network")
	fs.StringVar(&cfg.Out, "out", "", "also write the results as JSON to this file")
	fs.StringVar(&cfg.LogLevel, "log-level", "warn", "log level of the lab's daemons")
	fs.BoolVar(&cfg.Keep, "keep-logs", false, "keep the lab's logs (printed path) after the run")
	if args[0] == "cni-inner" {
		fs.StringVar(&cfg.innerSocket, "agent-socket", "", "agent socket")
		fs.StringVar(&cfg.innerDataDir, "data-dir", "", "scratch directory")
		fs.StringVar(&cfg.innerDaemons, "daemon-pids", "", "pids of the lab's daemons")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "weft-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.Iterations < 1 || cfg.Runs < 1 {
		fmt.Fprintln(stderr, "weft-bench: --iterations and --runs must be positive")
		return 2
	}
	cfg.Concurrency = nil
	for c := range strings.SplitSeq(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "weft-bench: --concurrency: %q is not a positive number\n", c)
			return 2
		}
		cfg.Concurrency = append(cfg.Concurrency, n)
	}
	if cfg.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "weft-bench:", err)
			return 1
		}
		cfg.BinDir = filepath.Dir(exe)
	}
	var err error
	if args[0] == "cni" {
		err = runOuter(ctx, cfg, stdout, stderr)
	} else {
		err = runInner(ctx, cfg, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "weft-bench:", err)
		return 1
	}
	return 0
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// runOuter brings up a one-node lab, then runs the driver inside the
// node's network namespace, where both plugins configure containers.
func runOuter(ctx context.Context, cfg Config, stdout, stderr io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("the CNI benchmark needs root (network namespaces)")
	}
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(cfg.BaselineDir, p)); err != nil {
			return fmt.Errorf("baseline plugin %s not found in %s (apt-get install containernetworking-plugins)", p, cfg.BaselineDir)
		}
	}
	dir, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if err == nil && !cfg.Keep {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintln(stderr, "weft-bench: logs kept in", dir)
		}
	}()
	// A free port for the controller; without Marathon the lab listens on
	// nothing else.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	l, err := lab.Up(ctx, lab.Options{
		Nodes: 1, StateDir: filepath.Join(dir, "lab"), BinDir: cfg.BinDir, Prefix: "weftbench" + randomSuffix() + "-",
		ControllerListen: addr, NoMarathon: true, NoOverlay: true, Spares: cfg.Spares, LogLevel: cfg.LogLevel,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Down(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintln(stderr, "weft-bench: tear down the lab:", err)
		}
	}()
	if _, err := l.Client().CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "bench"}, Subnets: []api.Subnet{{CIDR: "10.200.0.0/16", BlockPrefix: 24}}}); err != nil {
		return fmt.Errorf("create network bench: %w", err)
	}
	node := l.Nodes[0]
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"--net=" + netns.Path(node.Netns), exe, "cni-inner",
		"--bin-dir", cfg.BinDir, "--baseline-dir", cfg.BaselineDir, "--iterations", strconv.Itoa(cfg.Iterations), "--runs", strconv.Itoa(cfg.Runs),
		"--concurrency", joinInts(cfg.Concurrency), "--agent-socket", node.AgentSocket, "--data-dir", dir,
		"--daemon-pids", joinInts([]int{l.Controller.PID, node.Agent.PID})}
	if cfg.Out != "" {
		out, err := filepath.Abs(cfg.Out)
		if err != nil {
			return err
		}
		args = append(args, "--out", out)
	}
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("benchmark driver: %w", err)
	}
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

type plugin struct {
	name string
	conf []byte
	path []string
}

// runInner is the driver; it runs inside the node's network namespace.
func runInner(ctx context.Context, cfg Config, stdout io.Writer) error {
	plugins := []plugin{
		{"weft-cni", []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"weft","type":"weft-cni","weft":{"socket":%q,"network":"bench"}}`, cfg.innerSocket)), []string{cfg.BinDir}},
		{"bridge+host-local", []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"baseline","type":"bridge","bridge":"wbench0","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","subnet":"10.201.0.0/16","dataDir":%q}}`, filepath.Join(cfg.innerDataDir, "host-local"))), []string{cfg.BaselineDir}},
	}
	prefix := "wbc" + randomSuffix() + "-"
	defer func() {
		names, _ := netns.List(prefix)
		for _, n := range names {
			_ = netns.DeleteNamed(n)
		}
	}()
	var daemons []int
	for f := range strings.SplitSeq(cfg.innerDaemons, ",") {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			daemons = append(daemons, pid)
		}
	}
	var results []Result
	settle(ctx, daemons) // the lab's start-up work
	for run := 1; run <= cfg.Runs; run++ {
		var rs []Result
		for _, conc := range cfg.Concurrency {
			for _, p := range plugins {
				r, err := measure(ctx, p, conc, cfg.Iterations, prefix, cfg.innerDataDir, daemons)
				if err != nil {
					return fmt.Errorf("%s at concurrency %d: %w", p.name, conc, err)
				}
				r.Run = run
				rs = append(rs, r)
			}
		}
		if cfg.Runs > 1 {
			fmt.Fprintf(stdout, "run %d of %d\n", run, cfg.Runs)
		}
		report(stdout, rs)
		results = append(results, rs...)
	}
	if cfg.Runs > 1 {
		reportMedians(stdout, results, cfg.Concurrency)
	}
	if cfg.Out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(cfg.Out, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// measure runs n ADD+DEL pairs over conc workers. Namespace creation and
// deletion are not timed; each pair is. The CPU spent meanwhile by this
// process, the plugins it ran and the daemons is reported too.
func measure(ctx context.Context, p plugin, conc, n int, prefix, dataDir string, daemons []int) (Result, error) {
	//lint:ignore SA1019 Mesos hands plugins single-plugin configs, not conflists: this is the format under test.
	conf, err := libcni.ConfFromBytes(p.conf)
	if err != nil {
		return Result{}, err
	}
	cni := libcni.NewCNIConfigWithCacheDir(p.path, filepath.Join(dataDir, "cni-cache"), nil)
	// Warm up: one pair, so first-use costs (bridge creation, block lease,
	// page cache) are not measured.
	if _, _, err := pair(ctx, cni, conf, prefix+"warm-"+strconv.Itoa(conc)); err != nil {
		return Result{}, fmt.Errorf("warm-up: %w", err)
	}
	lat := make([]time.Duration, n)
	adds := make([]time.Duration, n)
	var next int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	cpu0, daemons0, machine0 := driverCPU(), daemonCPU(daemons), machineCPU()
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || ctx.Err() != nil {
					return
				}
				d, add, err := pair(ctx, cni, conf, fmt.Sprintf("%sc%d-%d-%d", prefix, conc, w, i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat[i], adds[i] = d, add
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu, daemonsCPU := driverCPU()-cpu0, daemonCPU(daemons)-daemons0
	if firstErr != nil {
		return Result{}, firstErr
	}
	// Work the daemons do after the last pair (releases after the
	// agent's release delay) is the plugin's, and must not land in the
	// next measurement.
	daemonsCPU += settle(ctx, daemons)
	machine := machineCPU() - machine0
	dels := make([]time.Duration, n)
	var sum time.Duration
	for i, d := range lat {
		sum += d
		dels[i] = d - adds[i]
	}
	slices.Sort(lat)
	slices.Sort(adds)
	slices.Sort(dels)
	return Result{Plugin: p.name, Concurrency: conc, N: n, P50: pct(lat, 50), P99: pct(lat, 99), Mean: sum / time.Duration(n),
		AddP50: pct(adds, 50), DelP50: pct(dels, 50), Wall: wall,
		CPU: cpu / time.Duration(n), DaemonCPU: daemonsCPU / time.Duration(n), MachineCPU: machine / time.Duration(n)}, nil
}

// driverCPU is the CPU time of this process and of its children that
// have been waited for (the plugins libcni ran).
func driverCPU() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// machineCPU is the busy time of all CPUs so far (/proc/stat: user,
// nice, system, irq, softirq and steal, in clock ticks of 10ms).
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var total time.Duration
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		if v, err := strconv.ParseInt(f[i], 10, 64); err == nil {
			total += time.Duration(v) * 10 * time.Millisecond
		}
	}
	return total
}

// daemonCPU is the CPU time the processes have used so far (utime and
// stime of /proc/<pid>/stat, in clock ticks of 10ms).
func daemonCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		for _, i := range []int{11, 12} { // utime, stime after the state field
			if v, err := strconv.ParseInt(f[i], 10, 64); err == nil {
				total += time.Duration(v) * 10 * time.Millisecond
			}
		}
	}
	return total
}

// settle waits until the daemons are quiet (under 10 ms of CPU in a
// quarter of a second), at most 30 s, and returns the CPU they used
// meanwhile.
func settle(ctx context.Context, daemons []int) time.Duration {
	start := daemonCPU(daemons)
	deadline := time.Now().Add(30 * time.Second)
	last := start
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		now := daemonCPU(daemons)
		if now-last < 10*time.Millisecond {
			return now - start
		}
		last = now
	}
	return last - start
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// pair creates a namespace, times ADD then DEL in it, and removes it. It
// returns the time of both and of the ADD alone.
func pair(ctx context.Context, cni *libcni.CNIConfig, conf *libcni.NetworkConfig, ns string) (total, add time.Duration, err error) {
	if err := netns.NewNamed(ns); err != nil {
		return 0, 0, err
	}
	defer func() { _ = netns.DeleteNamed(ns) }()
	rt := &libcni.RuntimeConf{ContainerID: ns, NetNS: netns.Path(ns), IfName: "eth0"}
	t0 := time.Now()
	if _, err := cni.AddNetwork(ctx, conf, rt); err != nil {
		return 0, 0, fmt.Errorf("ADD: %w", err)
	}
	add = time.Since(t0)
	if err := cni.DelNetwork(ctx, conf, rt); err != nil {
		return 0, 0, fmt.Errorf("DEL: %w", err)
	}
	return time.Since(t0), add, nil
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

// ratios returns the p50 and p99 ratios weft / baseline of each run at
// the concurrency.
func ratios(rs []Result, conc int) (p50, p99 []float64) {
	for _, r := range rs {
		if r.Plugin != "weft-cni" || r.Concurrency != conc {
			continue
		}
		for _, b := range rs {
			if b.Plugin != "weft-cni" && b.Concurrency == conc && b.Run == r.Run {
				p50 = append(p50, float64(r.P50)/float64(b.P50))
				p99 = append(p99, float64(r.P99)/float64(b.P99))
			}
		}
	}
	return p50, p99
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// reportMedians prints the ratios of every run and their medians.
func reportMedians(w io.Writer, rs []Result, concs []int) {
	fmt.Fprintln(w, "\nratio weft-cni / bridge+host-local over all runs (median, then each run; lower is better)")
	for _, conc := range concs {
		p50, p99 := ratios(rs, conc)
		if len(p50) == 0 {
			continue
		}
		each := make([]string, len(p50))
		for i := range p50 {
			each[i] = fmt.Sprintf("%.2f", p50[i])
		}
		fmt.Fprintf(w, "  concurrency %-3d p50 %.2f  p99 %.2f   (p50 of each run: %s)\n", conc, median(p50), median(p99), strings.Join(each, " "))
	}
}

// report prints a table and the ratios weft / baseline.
func report(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "CNI ADD+DEL latency (ms), same run, same namespace setup")
	fmt.Fprintf(w, "%-20s %5s %6s %8s %8s %8s %9s %9s %10s %11s %11s %11s\n", "plugin", "conc", "n", "p50", "p99", "mean", "ADD p50", "DEL p50", "pairs/s", "CPU/pair", "daemons", "machine")
	for _, r := range rs {
		fmt.Fprintf(w, "%-20s %5d %6d %8s %8s %8s %9s %9s %10.1f %11s %11s %11s\n", r.Plugin, r.Concurrency, r.N, ms(r.P50), ms(r.P99), ms(r.Mean), ms(r.AddP50), ms(r.DelP50), float64(r.N)/r.Wall.Seconds(), ms(r.CPU), ms(r.DaemonCPU), ms(r.MachineCPU))
	}
	fmt.Fprintln(w, "(CPU/pair, in ms: driver and plugin processes; daemons: the lab's controller and agent; machine: all CPUs, kernel threads included;")
	fmt.Fprintln(w, " daemons and machine while the pairs ran and until the daemons were quiet again)")
	fmt.Fprintln(w, "\nratio weft-cni / bridge+host-local (lower is better)")
	for _, r := range rs {
		if r.Plugin != "weft-cni" {
			continue
		}
		for _, b := range rs {
			if b.Plugin != "weft-cni" && b.Concurrency == r.Concurrency {
				fmt.Fprintf(w, "  concurrency %-3d p50 %.2f  p99 %.2f\n", r.Concurrency, float64(r.P50)/float64(b.P50), float64(r.P99)/float64(b.P99))
			}
		}
	}
}
