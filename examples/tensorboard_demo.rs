//! Writes a small known run of TensorBoard scalars to the directory given, for CI to read back
//! with TensorBoard's own reader (.ci/check_tensorboard.py checks the same numbers).

use descent::tensorboard::TensorBoard;

fn main() -> descent::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .ok_or_else(|| descent::Error::InvalidArg("usage: tensorboard_demo DIR".into()))?;
    let mut tb = TensorBoard::new(std::path::Path::new(&dir))?;
    for epoch in 1..=5u64 {
        let step = epoch * 938;
        let e = epoch as f32;
        tb.scalar("loss/train", step, 1.0 / e)?;
        tb.scalar("loss/test", step, 1.5 / e)?;
        tb.scalar("accuracy/test", step, 0.9 + 0.01 * e)?;
        tb.scalar("lr", step, 0.03)?;
        tb.scalar("samples_per_second", step, 1000.0 * e)?;
    }
    tb.flush()?;
    println!("{}", tb.path().display());
    Ok(())
}
