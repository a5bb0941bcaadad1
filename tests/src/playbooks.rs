//! Playbooks the end-to-end tests share.

/// One task that succeeds at once.
pub const OK: &str = "\
- hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      command: /bin/true
";

/// One task that fails with "Service not found" (exit code 1).
pub const FAILING: &str = "\
- hosts: all
  gather_facts: false
  tasks:
    - name: Break
      fail:
        msg: Service not found
";
