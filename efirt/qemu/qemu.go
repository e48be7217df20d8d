//go:build linux

// Package qemu boots EFI applications under QEMU and EDK2 firmware on the host: it finds or installs QEMU and firmware, lays out an ESP, runs the machine and reports the program's exit status.
package qemu

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Status values the runner reports besides the program's own exit status.
const (
	StatusTimeout         = 124 // the program did not exit within the timeout
	StatusFirmwareFailure = 125 // QEMU or the firmware failed before the program reported an exit
)

// Config says how to run the machine. The zero value is usable.
type Config struct {
	Arch      string        // GOARCH: "amd64" (the default), "arm64", "riscv64" or "loong64"
	Firmware  string        // path to the firmware code image (e.g. OVMF_CODE_4M.fd); "" = find or install
	Timeout   time.Duration // 0 = 5 minutes
	MemoryMiB int           // 0 = 2048
	Stdout    io.Writer     // serial console text (cleaned), nil = discard
	Log       io.Writer     // runner's own messages (which qemu, which firmware, install steps), nil = discard
	QEMUArgs  []string      // extra QEMU arguments appended
	Disks     []string      // raw disk images attached as virtio-blk disks, in order
	Netns     string        // network namespace (ip netns) QEMU runs in, "" = this process's; for tap devices living there
	QEMU      string        // Machine (or "") = the machine's QEMU, Trixie = trixie's QEMU 10 from the cache (always on loong64)

	// ScratchLog attaches a fresh scratch disk for the loader's log (see
	// observe) and recovers it into Result.ScratchLog; when the log never
	// reached the serial console, it is also written to Stdout.
	ScratchLog bool

	// Beside are files (name → content) Run places next to the program in
	// \EFI\BOOT, such as a plan file the loader reads from its directory.
	Beside map[string][]byte

	// ChildExits is how many efirt exit lines come from programs the
	// program itself starts (a loader chain-loading Go EFI programs) and
	// so do not end the run.
	ChildExits int

	// FirstLineMarker, when non-empty, makes Result.FirstOutput the time
	// from QEMU's start to the first console line containing it.
	FirstLineMarker string
}

// Result is what happened inside the machine.
type Result struct {
	Status      int           // program exit status (0-255), or StatusTimeout / StatusFirmwareFailure
	Exited      bool          // true if the program reported its exit status
	Reason      string        // human-readable, e.g. "program exited with status 3", "timeout after 2m0s"
	Console     string        // all cleaned console text
	Duration    time.Duration // from QEMU start to the exit marker (or the end of the run)
	FirstOutput time.Duration // from QEMU start to the first line with Config.FirstLineMarker; 0 if never seen
	ScratchLog  string        // the log recovered from the scratch disk (Config.ScratchLog)
}

const (
	defaultTimeout   = 5 * time.Minute
	defaultMemoryMiB = 2048
	// exitGrace lets output printed right after the verdict (the rest of a
	// CPU exception dump, the program's last lines) reach the console.
	exitGrace = 200 * time.Millisecond
	// maxStderr bounds the QEMU diagnostics kept for Result.Reason.
	maxStderr = 64 << 10
)

// Run boots efiFile with args and waits for the program's exit, a firmware
// failure, or the timeout. The error is non-nil only when the run could not
// be attempted (no QEMU and it cannot be installed, missing firmware,
// unreadable efiFile, bad args), or when ctx was canceled during the run;
// then Result still says what had happened so far. Everything else that
// happens inside the VM is in Result.
func Run(ctx context.Context, cfg Config, efiFile string, args []string) (Result, error) {
	arch := archOf(cfg)
	if _, ok := bootName[arch]; !ok {
		return Result{}, errUnsupportedArch(arch)
	}
	// Check the arguments before installing or fetching anything.
	if _, err := encodeArgs(args); err != nil {
		return Result{}, err
	}
	program, err := os.ReadFile(efiFile)
	if err != nil {
		return Result{}, fmt.Errorf("reading the EFI program: %w", err)
	}
	return boot(ctx, cfg, func(esp string) error {
		if err := writeESP(esp, arch, program, args); err != nil {
			return err
		}
		return writeBeside(esp, cfg.Beside)
	})
}

// RunESP boots the machine from an ESP that populate fills in (a directory
// QEMU presents as a FAT disk), for payloads other than one program: a
// shell with a startup script, a foreign boot loader, a kernel. The run
// ends as Run's does; a guest that powers off ends it with
// StatusFirmwareFailure and a reason saying QEMU exited, so callers judge
// such runs by Result.Console.
func RunESP(ctx context.Context, cfg Config, populate func(esp string) error) (Result, error) {
	arch := archOf(cfg)
	if _, ok := bootName[arch]; !ok {
		return Result{}, errUnsupportedArch(arch)
	}
	return boot(ctx, cfg, populate)
}

// boot runs the machine with an ESP that populate fills in.
func boot(ctx context.Context, cfg Config, populate func(esp string) error) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = defaultMemoryMiB
	}
	bin, err := FindQEMU(cfg)
	if err != nil {
		return Result{}, err
	}
	fw, err := FindFirmware(cfg)
	if err != nil {
		return Result{}, err
	}
	dir, err := os.MkdirTemp("", "ociboot-qemu-")
	if err != nil {
		return Result{}, fmt.Errorf("creating the run directory: %w", err)
	}
	defer os.RemoveAll(dir)
	esp := filepath.Join(dir, "esp")
	if err := os.Mkdir(esp, 0o755); err != nil {
		return Result{}, fmt.Errorf("creating the ESP: %w", err)
	}
	if err := populate(esp); err != nil {
		return Result{}, err
	}
	// The variable store is writable flash: each run gets its own copy so
	// runs neither share nor corrupt the pristine one.
	vars := filepath.Join(dir, "vars.fd")
	if err := copyFile(fw.Vars, vars); err != nil {
		return Result{}, fmt.Errorf("copying the firmware variable store: %w", err)
	}
	argv := append(commandLine(cfg, fw.Code, vars, esp), cfg.QEMUArgs...)
	scratch, disks, err := diskArgs(cfg, dir)
	if err != nil {
		return Result{}, err
	}
	argv = append(argv, disks...)
	logf(cfg.Log, "running %s %s", bin, strings.Join(argv, " "))
	res, err := runMachine(ctx, cfg, bin, argv)
	showScratchLog(cfg, scratch, &res)
	return res, err
}

// machineArgs are the machine and CPU of each arch. arm64's pauth-impdef
// swaps QEMU's slow architected pointer-authentication hash for a cheap
// one (measured: 0.6 s less to the firmware's boot manager).
var machineArgs = map[string][]string{
	"amd64":   {"-M", "q35", "-cpu", "max"},
	"arm64":   {"-M", "virt", "-cpu", "max,pauth-impdef=on"},
	"loong64": {"-M", "virt", "-cpu", "la464"},
	"riscv64": {"-M", "virt", "-cpu", "rv64"},
}

// archFirmwareArgs map the firmware into machines that cannot take it as
// pflash (riscv64.go); every other arch gets the two pflash drives.
var archFirmwareArgs = map[string]func(code, vars string) []string{}

// commandLine returns QEMU's arguments.
func commandLine(cfg Config, code, vars, esp string) []string {
	args := []string{
		// TCG always: the machines this runs on have no usable KVM, and one
		// accelerator everywhere keeps timings comparable.
		"-accel", "tcg",
	}
	args = append(args, machineArgs[archOf(cfg)]...)
	args = append(args,
		"-m", strconv.Itoa(cfg.MemoryMiB),
		"-smp", "1",
		// Only the devices below: the ESP is then the only boot device,
		// so a firmware complaint about a boot option is about ours.
		"-nodefaults",
		"-display", "none",
		"-serial", "stdio",
		"-monitor", "none",
		// A reset or triple fault ends the run instead of looping.
		"-no-reboot",
		"-boot", "menu=on,splash-time=0",
	)
	if f, ok := archFirmwareArgs[archOf(cfg)]; ok {
		args = append(args, f(code, vars)...)
	} else {
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+optValue(code),
			"-drive", "if=pflash,format=raw,unit=1,file="+optValue(vars))
	}
	return append(args,
		"-drive", "if=virtio,format=raw,file=fat:rw:"+optValue(esp),
		"-device", "virtio-rng-pci",
		"-nic", "none",
	)
}

// optValue escapes a value inside a QEMU option list, where ',' separates
// options and ",," stands for a literal comma.
func optValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// runMachine starts QEMU and follows its console until the program exits,
// the firmware fails, QEMU ends, the timeout passes or ctx is canceled.
// QEMU never outlives it.
func runMachine(ctx context.Context, cfg Config, bin string, argv []string) (Result, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{}, fmt.Errorf("creating the console pipe: %w", err)
	}
	defer pr.Close()
	stderr := &tailBuffer{max: maxStderr}
	cmd := exec.Command(bin, argv...)
	if cfg.Netns != "" {
		// ip execs QEMU in place after entering the namespace, so the
		// process group and death signal below still apply to QEMU.
		cmd = exec.Command("ip", append([]string{"netns", "exec", cfg.Netns, bin}, argv...)...)
	}
	cmd.Stdin = nil // /dev/null: the program must not need input
	cmd.Stdout = pw
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own group, so killing it reaches anything it spawned.
		Setpgid: true,
		// If this process dies (a panicking test), the kernel kills QEMU.
		Pdeathsig: syscall.SIGKILL,
	}

	start := time.Now()
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits,
		// and the Go runtime may retire idle threads: pin this goroutine to
		// its thread and keep it there, in Wait, for QEMU's whole life. The
		// thread is retired on return, which is fine once QEMU is reaped.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	err = <-started
	pw.Close() // QEMU holds the write end now; EOF comes when it exits
	if err != nil {
		return Result{}, fmt.Errorf("starting %s: %w", bin, err)
	}
	pgid := cmd.Process.Pid
	reaped := false
	var waitErr error
	defer func() {
		// Any early way out, including a panic, still ends QEMU.
		if !reaped {
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-waited
		}
	}()

	con := newConsole(cfg.Stdout, start, cfg.FirstLineMarker)
	con.skip = cfg.ChildExits
	decided := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 64<<10)
		for {
			n, err := pr.Read(buf)
			if n > 0 && con.feed(buf[:n], time.Now()) {
				decided <- struct{}{} // feed reports a decision once
			}
			if err != nil {
				con.finish(time.Now())
				return
			}
		}
	}()

	timer := time.NewTimer(cfg.Timeout)
	defer timer.Stop()
	var timedOut, canceled bool
	select {
	case <-decided:
		grace := time.NewTimer(exitGrace)
		select {
		case <-grace.C:
		case <-readDone:
		}
		grace.Stop()
	case <-readDone:
		// QEMU closed the console, so it is ending by itself: let it, so
		// the exit status reported is its own.
		select {
		case waitErr = <-waited:
			reaped = true
		case <-time.After(2 * time.Second):
		}
	case <-timer.C:
		timedOut = true
	case <-ctx.Done():
		canceled = true
	}
	end := time.Now()
	if !reaped {
		syscall.Kill(-pgid, syscall.SIGKILL)
		waitErr = <-waited
		reaped = true
	}
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
		// Something else holds the console's write end: stop reading.
		pr.Close()
		<-readDone
	}

	res := Result{Console: con.String(), FirstOutput: con.firstOutput, Duration: end.Sub(start)}
	if con.decided {
		res.Duration = con.decideAt.Sub(start)
	}
	var err2 error
	switch {
	case con.exited:
		res.Status, res.Exited = con.status, true
		res.Reason = fmt.Sprintf("program exited with status %d", con.status)
	case con.failure != "":
		res.Status, res.Reason = StatusFirmwareFailure, con.failure
	case timedOut:
		res.Status, res.Reason = StatusTimeout, fmt.Sprintf("timeout after %v", cfg.Timeout)
	case canceled:
		res.Status, res.Reason = StatusTimeout, "canceled: "+ctx.Err().Error()
		err2 = fmt.Errorf("run canceled: %w", ctx.Err())
	default:
		res.Status, res.Reason = StatusFirmwareFailure, qemuExitReason(waitErr, stderr.String())
	}
	logf(cfg.Log, "%s (after %v)", res.Reason, res.Duration.Round(time.Millisecond))
	return res, err2
}

// qemuExitReason explains QEMU ending before the program reported an exit.
func qemuExitReason(waitErr error, stderr string) string {
	status := "exit status 0"
	if waitErr != nil {
		status = waitErr.Error()
	}
	reason := "qemu exited: " + status
	if msg := lastLines(stderr, 3); msg != "" {
		return reason + ": " + msg
	}
	if waitErr == nil {
		reason += " (the machine shut down or reset before the program reported an exit)"
	}
	return reason
}

// tailBuffer keeps the last max bytes written to it. exec copies QEMU's
// stderr into it; Wait returning orders those writes before our reads.
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
