//go:build linux

package qemu

import (
	"strings"
	"testing"
	"time"
)

// firmwareSample is what OVMF really prints around a program's run.
const firmwareSample = "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\r\n" +
	"BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\r\n" +
	"\x1b[1m\x1b[33m\x1b[40mhello\x1b[0m\x1b[37m\x1b[40m world\r\n" +
	"\x1b]0;title\x07\x1bPdcs\x1b\\\x1b(Bdone\x1b7\x1b8\r\n" +
	"\x1b[09;01HPress ESC in 5 seconds\x1b[09;01HPress ESC in 4 seconds\r\n" +
	"efirt: exit_group(3)\r\n"

const firmwareClean = "BdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\n" +
	"BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\n" +
	"hello world\n" +
	"done\n" +
	"Press ESC in 5 seconds\nPress ESC in 4 seconds\n" +
	"efirt: exit_group(3)\n"

func TestCleanerWhole(t *testing.T) {
	got := string(newCleaner().clean(nil, []byte(firmwareSample)))
	if got != firmwareClean {
		t.Errorf("clean:\n got %q\nwant %q", got, firmwareClean)
	}
}

func TestCleanerSplitAcrossWrites(t *testing.T) {
	// Every split point, and byte by byte: escapes cut anywhere must still go.
	for cut := 0; cut <= len(firmwareSample); cut++ {
		c := newCleaner()
		got := c.clean(nil, []byte(firmwareSample[:cut]))
		got = c.clean(got, []byte(firmwareSample[cut:]))
		if string(got) != firmwareClean {
			t.Fatalf("cut at %d:\n got %q\nwant %q", cut, got, firmwareClean)
		}
	}
	c := newCleaner()
	var got []byte
	for i := range len(firmwareSample) {
		got = c.clean(got, []byte{firmwareSample[i]})
	}
	if string(got) != firmwareClean {
		t.Errorf("byte by byte:\n got %q\nwant %q", got, firmwareClean)
	}
}

func TestCleanerDropsTrailingSpaces(t *testing.T) {
	// A menu painting blank rows with cursor moves leaves no empty lines.
	in := "a  b   \r\n\x1b[02;01H        \x1b[03;01H   \x1b[04;01H  menu  \x1b[05;01Hitem \ttab"
	want := "a  b\n  menu\nitem \ttab"
	c := newCleaner()
	var got []byte
	for i := range len(in) {
		got = c.clean(got, []byte{in[i]})
	}
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCleanerKeepsUTF8AndTabs(t *testing.T) {
	in := "caf\xc3\xa9\tok\x07\x08\r\n"
	if got := string(newCleaner().clean(nil, []byte(in))); got != "café\tok\n" {
		t.Errorf("got %q", got)
	}
}

func TestParseExitMarker(t *testing.T) {
	for _, tc := range []struct {
		line   string
		status int
		ok     bool
	}{
		{"efirt: exit_group(0)", 0, true},
		{"efirt: exit_group(3)", 3, true},
		{"efirt: exit_group(255)", 255, true},
		{"efirt: exit_group(-1)", 255, true},
		{"efirt: exit_group(256)", 0, true},
		{"output without newline efirt: exit_group(7)", 7, true},
		{"efirt: exit_group()", 0, false},
		{"efirt: exit_group(x)", 0, false},
		{"efirt: exit_group(3", 0, false},
		{"exit_group(3)", 0, false},
		{"hello", 0, false},
	} {
		status, ok := parseExitMarker(tc.line)
		if status != tc.status || ok != tc.ok {
			t.Errorf("parseExitMarker(%q) = %d, %v; want %d, %v", tc.line, status, ok, tc.status, tc.ok)
		}
	}
}

func TestConsoleDecidesOnMarkerSplitAcrossReads(t *testing.T) {
	start := time.Now()
	var out strings.Builder
	c := newConsole(&out, start, "hello")
	decided := false
	for i := range len(firmwareSample) {
		if c.feed([]byte{firmwareSample[i]}, start.Add(time.Duration(i)*time.Millisecond)) {
			if decided {
				t.Fatal("decided twice")
			}
			decided = true
		}
	}
	if !decided || !c.exited || c.status != 3 {
		t.Fatalf("decided=%v exited=%v status=%d", decided, c.exited, c.status)
	}
	if out.String() != firmwareClean || c.String() != firmwareClean {
		t.Errorf("console text %q, stdout %q", c.String(), out.String())
	}
	if want := time.Duration(strings.Index(firmwareSample, "hello")+len("hello")-1) * time.Millisecond; c.firstOutput != want {
		t.Errorf("firstOutput %v, want %v (when the marker's last byte arrived)", c.firstOutput, want)
	}
}

func TestConsoleFirmwareFailures(t *testing.T) {
	for _, tc := range []struct{ text, reason string }{
		{
			"\x1b[2J\x1b[01;01HBdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0): Not Found\r\n",
			"firmware: BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0): Not Found",
		},
		{"No bootable option or device was found.\r\n", "firmware: No bootable option or device was found"},
		{
			"BdsDxe: starting Boot0001 \"UEFI Misc Device\" from X\r\nBdsDxe: failed to start Boot0001 \"UEFI Misc Device\" from X: Aborted\r\n",
			"firmware: BdsDxe: failed to start Boot0001 \"UEFI Misc Device\" from X: Aborted",
		},
		{
			"BdsDxe: starting Boot0001 \"UEFI Misc Device\" from X\r\n!!!! X64 Exception Type - 06(#UD - Invalid Opcode)  CPU Apic ID - 00000000 !!!!\r\n",
			"firmware: CPU exception: X64 Exception Type - 06(#UD - Invalid Opcode) CPU Apic ID - 00000000",
		},
		{
			"BdsDxe: starting Boot0001 \"UEFI Misc Device\" from X\r\nselftest: passing address 8\r\n\r\n\r\nSynchronous Exception at 0x00000000BDF15AC0\r\n",
			"firmware: CPU exception: Synchronous Exception at 0x00000000BDF15AC0",
		},
		{
			"BdsDxe: starting Boot0001 \"UEFI Misc Device\" from X\r\nbye\r\nBdsDxe: loading Boot0000 \"UiApp\" from Fv(1)\r\n",
			"firmware: the program returned without reporting an exit status; the firmware went on with: BdsDxe: loading Boot0000 \"UiApp\" from Fv(1)",
		},
	} {
		c := newConsole(nil, time.Now(), "")
		c.feed([]byte(tc.text), time.Now())
		if c.exited || c.failure != tc.reason {
			t.Errorf("%q:\n got failure %q (exited %v)\nwant %q", tc.text, c.failure, c.exited, tc.reason)
		}
	}
	// After the marker, the firmware going on is no failure.
	c := newConsole(nil, time.Now(), "")
	c.feed([]byte("BdsDxe: starting Boot0001 \"x\"\r\nefirt: exit_group(0)\r\nBdsDxe: loading Boot0000 \"UiApp\"\r\n"), time.Now())
	if !c.exited || c.status != 0 || c.failure != "" {
		t.Errorf("exited=%v status=%d failure=%q", c.exited, c.status, c.failure)
	}
	// A very long line without a newline is still watched.
	c = newConsole(nil, time.Now(), "needle")
	c.feed([]byte(strings.Repeat("x", maxLine)+"needle"), time.Now())
	c.feed([]byte(strings.Repeat("y", maxLine)+"efirt: exit_group(4)"), time.Now())
	if c.firstOutput == 0 || !c.exited || c.status != 4 {
		t.Errorf("long line: firstOutput=%v exited=%v status=%d", c.firstOutput, c.exited, c.status)
	}
	// A marker without a final newline still counts when the output ends.
	c = newConsole(nil, time.Now(), "")
	c.feed([]byte("efirt: exit_group(9)"), time.Now())
	c.finish(time.Now())
	if !c.exited || c.status != 9 {
		t.Errorf("unterminated marker: exited=%v status=%d", c.exited, c.status)
	}
}

func TestConsoleChildExits(t *testing.T) {
	c := newConsole(nil, time.Now(), "")
	c.skip = 1
	if c.feed([]byte("efirt: exit_group(0)\n"), time.Now()) || c.decided {
		t.Fatal("a child's exit ended the run")
	}
	if !c.feed([]byte("efirt: exit_group(4)\n"), time.Now()) || c.status != 4 {
		t.Fatalf("the program's own exit: decided %v status %d", c.decided, c.status)
	}
}
