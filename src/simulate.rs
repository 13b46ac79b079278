//! The practice tenant: a faithful Management Activity API, token endpoint and control
//! plane on a virtual clock (issue #2). Shares `model`; must never use `store`.
