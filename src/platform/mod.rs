//! Platform: facts about the board hgpose runs on (CPU features, cores, devices), read at run time
//! so one binary can choose well on a Pi 4, a Pi 5 or a Jetson; and what it offers every stage
//! alike, such as its GPIO lines ([`gpio`]: capture's trigger lines and the outputs' rule and
//! panel lines open them here, so neither stage imports the other).

mod cpu;
mod devices;
pub mod gpio;
pub mod memory;
pub mod python;

pub use cpu::{has_feature, has_int8_dot_product, CpuInfo};
pub use devices::{list_devices, DeviceNode};
