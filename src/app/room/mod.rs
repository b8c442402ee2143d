//! A room's page: a channel (rendered on the server for the first load, then live) or a
//! private conversation (loaded in the browser, which holds the token). Both show the room's
//! name, the connection state, its messages and the box to write in; channels also show who
//! is online. One component per file.

mod channel_page;
mod composer;
mod delete_dialog;
mod direct_page;
mod jump;
mod layout;
mod message_log;
mod older_messages;
mod online_list;
mod reaction_picker;
mod room_view;

pub use channel_page::ChannelPage;
pub use direct_page::DirectPage;
pub use jump::entry_id;
pub use layout::Original;
