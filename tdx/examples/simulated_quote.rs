//! Writes a simulated TD's quote, collateral and mock root CA to a directory, for trying
//! `cocoon-measure quote verify --trust-simulated` by hand:
//!
//! ```text
//! cargo run -p cocoon-tdx --example simulated_quote -- OUTDIR [SEED] [REPORT_DATA_HEX]
//! cocoon-measure quote verify --quote OUTDIR/quote.bin --collateral OUTDIR/collateral.json \
//!     --trust-simulated --root-ca OUTDIR/root_ca.der
//! ```

use cocoon_tdx::simulated::SimulatedTd;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first().map(PathBuf::from) else {
        eprintln!("usage: simulated_quote OUTDIR [SEED] [REPORT_DATA_HEX]");
        return ExitCode::from(2);
    };
    let seed = match args.get(1).map(|s| s.parse::<u64>()) {
        None => 1,
        Some(Ok(seed)) => seed,
        Some(Err(e)) => {
            eprintln!("simulated_quote: SEED: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report_data = [0u8; 64];
    if let Some(hex_text) = args.get(2) {
        match hex::decode(hex_text) {
            Ok(bytes) if bytes.len() <= 64 => report_data[..bytes.len()].copy_from_slice(&bytes),
            _ => {
                eprintln!("simulated_quote: REPORT_DATA_HEX must be at most 64 bytes of hex");
                return ExitCode::from(2);
            }
        }
    }
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        std::fs::create_dir_all(&out)?;
        let dir = tempfile::tempdir()?;
        let td = SimulatedTd::start(seed, dir.path())?;
        let quote = td.provider().get_quote(report_data)?;
        std::fs::write(out.join("quote.bin"), quote)?;
        std::fs::write(out.join("collateral.json"), td.collateral().to_json())?;
        std::fs::write(out.join("root_ca.der"), td.root_ca_der())?;
        Ok(())
    };
    match run() {
        Ok(()) => {
            println!(
                "simulated TD (seed {seed}): wrote quote.bin, collateral.json, root_ca.der to {}",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("simulated_quote: {e}");
            ExitCode::FAILURE
        }
    }
}
