//! Whether the protected app itself listens on all interfaces, which the OS tells in its own way.
//!
//! SimpleOTP only guards the new, protected port. An app started with `--ip=0.0.0.0` (or a
//! server that binds everything by default) still answers on its own port to every device on
//! the network, and they skip the code by going there. Linux lists every listening socket of
//! the network namespace in `/proc/net/tcp` and `/proc/net/tcp6`, readable without privileges;
//! elsewhere finding the owner of a port needs platform APIs, so the window explains in words
//! what to check instead. This is the one place that knows the difference.

/// What is known about the app's own listening socket. Only Linux finds out; elsewhere every
/// answer is `Unknown`, so the other two are never made there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub enum Exposure {
    /// A socket listens on 0.0.0.0 or :: with that port: other devices can reach it.
    AllInterfaces,
    /// Something listens on that port, but only on specific addresses (or nothing listens).
    NotAllInterfaces,
    /// This OS does not tell us cheaply.
    Unknown,
}

/// How a person checks it by hand on this OS (for [`Exposure::Unknown`]).
pub fn how_to_check(port: u16) -> String {
    if cfg!(target_os = "windows") {
        format!("run `netstat -an | findstr :{port}` in a terminal: 0.0.0.0:{port} or [::]:{port} means all interfaces")
    } else if cfg!(target_os = "macos") {
        format!("run `lsof -nP -iTCP:{port} -sTCP:LISTEN` in Terminal: *:{port} means all interfaces")
    } else {
        format!("run `ss -ltn 'sport = :{port}'` in a terminal: 0.0.0.0:{port}, *:{port} or [::]:{port} means all interfaces")
    }
}

#[cfg(target_os = "linux")]
pub fn exposure(port: u16) -> Exposure {
    let tables = ["/proc/net/tcp", "/proc/net/tcp6"].map(std::fs::read_to_string);
    if tables.iter().all(|t| t.is_err()) {
        return Exposure::Unknown;
    }
    let everywhere = tables.iter().flatten().any(|table| linux::listens_on_all_interfaces(table, port));
    if everywhere {
        Exposure::AllInterfaces
    } else {
        Exposure::NotAllInterfaces
    }
}

#[cfg(not(target_os = "linux"))]
pub fn exposure(_port: u16) -> Exposure {
    Exposure::Unknown
}

#[cfg(target_os = "linux")]
mod linux {
    /// The kernel's state number of a listening socket (`TCP_LISTEN`).
    const LISTEN: &str = "0A";

    /// Whether a `/proc/net/tcp{,6}` table has a socket listening on the unspecified address
    /// (all zeros in hex, in either table's width) with `port`.
    pub(super) fn listens_on_all_interfaces(table: &str, port: u16) -> bool {
        table.lines().skip(1).any(|line| {
            // "  sl  local_address rem_address   st ..." → "0: 00000000:22B8 00000000:0000 0A ..."
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else { return false };
            let Some((ip, port_hex)) = local.split_once(':') else { return false };
            *state == LISTEN && u16::from_str_radix(port_hex, 16) == Ok(port) && ip.chars().all(|c| c == '0')
        })
    }

    #[cfg(test)]
    mod tests {
        use super::listens_on_all_interfaces;

        const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 100 0 0 10 0
   2: 00000000:1F92 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 100 0 0 10 0
";

        #[test]
        fn only_a_listening_socket_on_the_unspecified_address_counts() {
            assert!(listens_on_all_interfaces(TABLE, 8888), "0.0.0.0:8888 listens");
            assert!(!listens_on_all_interfaces(TABLE, 8081), "127.0.0.1:8081 is this computer only");
            assert!(!listens_on_all_interfaces(TABLE, 8082), "an established connection is no listener");
            assert!(!listens_on_all_interfaces("garbage\nmore garbage here", 8888));
        }
    }
}
