//! The appliance configuration: Devo's parameters template as-is, plus documented
//! extensions (issue #3). Must not do network I/O; secrets never appear in Debug output.
