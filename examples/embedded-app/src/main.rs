//! An application that deploys its database changes on start. The change files under
//! `changes/` are compiled into the binary by `ripcord::embed_changes!`; on start the
//! app deploys whatever is pending (idempotent: a second start deploys nothing), then
//! serves (here: prints what is deployed). `ripcord status --url …` and
//! `ripcord revert --url …` work on the same database afterwards.
//!
//! ```sh
//! cargo run -p embedded-app -- sqlite://app.db
//! DATABASE_URL=postgres://app@localhost/app cargo run -p embedded-app
//! ```

use ripcord::embed::{EmbeddedChange, Migrator};

/// The change files, read and checked while the app compiles.
static CHANGES: &[EmbeddedChange] = ripcord::embed_changes!("changes");

fn main() -> std::process::ExitCode {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| "sqlite://embedded-app.db".into());
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let migrator = Migrator::new(url)
        .with_embedded(CHANGES)
        .project("embedded-app");
    match runtime.block_on(start(&migrator)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("embedded-app: cannot migrate the database: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn start(migrator: &Migrator) -> Result<(), ripcord::OpError> {
    let deployed = migrator.deploy().await?;
    println!("deployed {} change(s)", deployed.deployed.len());
    for change in migrator.status().await?.changes {
        println!("  {:<9} {}", change.status.label(), change.change);
    }
    Ok(())
}
