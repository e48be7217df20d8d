//go:build linux

// Command initrd is the /init of the test initramfs: it proves that a
// booted kernel reached userspace, shows the command line the kernel got,
// and powers the machine off so the test run ends.
package main

import (
	"os"
	"strings"
	"syscall"
	"time"
)

// Marker is the line tests wait for; Cmdline prefixes the kernel command line.
const (
	Marker  = "ociboot-initrd: userspace reached"
	Cmdline = "ociboot-initrd: cmdline: "
)

// serialDevices are the serial consoles of the machines we boot, in case
// /dev/console is elsewhere (e.g. no console= on the command line).
var serialDevices = []string{"ttyS0", "ttyAMA0"}

func main() {
	// Errors only lose information here: keep going and power off.
	os.Mkdir("/proc", 0o555)
	os.Mkdir("/sys", 0o555)
	os.Mkdir("/dev", 0o755)
	syscall.Mount("proc", "/proc", "proc", 0, "")
	syscall.Mount("sysfs", "/sys", "sysfs", 0, "")
	syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")

	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		cmdline = []byte("(unreadable: " + err.Error() + ")")
	}
	msg := "\n" + Marker + "\n" + Cmdline + strings.TrimSpace(string(cmdline)) + "\n"

	// /sys/class/tty/console/active names the devices /dev/console writes
	// to; a serial port missing there gets its own copy.
	active, _ := os.ReadFile("/sys/class/tty/console/active")
	outs := []string{"/dev/console"}
	for _, d := range serialDevices {
		if !strings.Contains(" "+strings.TrimSpace(string(active))+" ", " "+d+" ") {
			outs = append(outs, "/dev/"+d)
		}
	}
	for _, p := range outs {
		if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NOCTTY, 0); err == nil {
			f.WriteString(msg)
			f.Close()
		}
	}
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	// Returning would panic the kernel ("Attempted to kill init"), which
	// also ends the run, but noisily: wait for the power to go.
	for {
		time.Sleep(time.Hour)
	}
}
