package tests

import (
	"fmt"
	"strings"
)

// inOrder checks that lines containing each of want arrive in that order
// (each after the line that matched the one before), and names the first
// one missing.
func (c *stampedConsole) inOrder(want ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for _, w := range want {
		for i < len(c.lines) && !strings.Contains(c.lines[i].text, w) {
			i++
		}
		if i == len(c.lines) {
			return fmt.Errorf("console: no line with %q after the ones matched before it (%q)", w, want)
		}
		i++
	}
	return nil
}

// count returns how many lines contain s.
func (c *stampedConsole) count(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l.text, s) {
			n++
		}
	}
	return n
}

// before returns the console text up to the first line containing s (all
// of it when no line does).
func (c *stampedConsole) before(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, l := range c.lines {
		if strings.Contains(l.text, s) {
			break
		}
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}
